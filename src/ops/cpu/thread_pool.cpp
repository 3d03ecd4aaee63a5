#include "ops/cpu/thread_pool.h"

#include <chrono>
#include <memory>

#include "ops/cpu/cpu_features.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define TB_CPU_RELAX() _mm_pause()
#else
#define TB_CPU_RELAX() ((void)0)
#endif

namespace tb::cpu {
namespace {

thread_local bool t_inside_task = false;

// How long an idle worker polls before sleeping. Long enough to bridge the gap between two
// kernels of a training step, short enough not to burn a core between steps.
constexpr auto kSpinTime = std::chrono::microseconds(200);

struct InsideTask {
  bool saved = t_inside_task;
  InsideTask() { t_inside_task = true; }
  ~InsideTask() { t_inside_task = saved; }
};

}  // namespace

bool ThreadPool::inside_task() { return t_inside_task; }

ThreadPool::ThreadPool(int threads) {
  if (threads < 1) threads = 1;
  workers_.reserve(size_t(threads - 1));
  for (int t = 1; t < threads; ++t) workers_.emplace_back([this, t] { worker_main(t); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(sleep_mutex_);
    stop_.store(true);
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::run_inline(TaskRef task) {
  InsideTask guard;
  task(0, 1);
}

void ThreadPool::run_task(TaskRef task) {
  if (workers_.empty() || t_inside_task) return run_inline(task);
  std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
  if (!busy.owns_lock()) return run_inline(task);

  task_ = task;
  error_ = nullptr;
  pending_.store(int(workers_.size()), std::memory_order_relaxed);
  // seq_cst pairs with the sleeper's increment-then-check, so either the worker sees the new
  // generation or we see it sleeping and notify it (Dekker style; see worker_main).
  generation_.fetch_add(1);
  if (sleepers_.load() > 0) {
    { std::lock_guard<std::mutex> lock(sleep_mutex_); }
    wake_.notify_all();
  }

  std::exception_ptr caller_error;
  {
    InsideTask guard;
    try {
      task(0, size());
    } catch (...) {
      caller_error = std::current_exception();
    }
  }
  for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) {
    if (spins < (1 << 12)) {
      TB_CPU_RELAX();
    } else {
      std::this_thread::yield();
    }
  }
  if (caller_error) std::rethrow_exception(caller_error);
  if (error_) std::rethrow_exception(error_);
}

void ThreadPool::worker_main(int thread) {
  uint32_t seen = 0;
  for (;;) {
    uint32_t now = generation_.load(std::memory_order_acquire);
    auto spin_until = std::chrono::steady_clock::now() + kSpinTime;
    for (int spins = 1; now == seen; ++spins) {
      TB_CPU_RELAX();
      now = generation_.load(std::memory_order_acquire);
      if (now == seen && spins % 256 == 0 && std::chrono::steady_clock::now() > spin_until) {
        std::unique_lock<std::mutex> lock(sleep_mutex_);
        sleepers_.fetch_add(1);
        while ((now = generation_.load()) == seen) wake_.wait(lock);
        sleepers_.fetch_sub(1);
      }
    }
    seen = now;
    if (stop_.load()) return;  // stored before the generation bump that woke us
    {
      InsideTask guard;
      try {
        task_(thread, size());
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex_);
        if (!error_) error_ = std::current_exception();
      }
    }
    pending_.fetch_sub(1, std::memory_order_release);
  }
}

void SpinBarrier::arrive_and_wait() {
  if (threads_ <= 1) return;
  uint32_t generation = generation_.load(std::memory_order_acquire);
  if (arrived_.fetch_add(1, std::memory_order_acq_rel) == threads_ - 1) {
    arrived_.store(0, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
    return;
  }
  for (int spins = 0; generation_.load(std::memory_order_acquire) == generation; ++spins) {
    if (spins < (1 << 12)) {
      TB_CPU_RELAX();
    } else {
      std::this_thread::yield();  // oversubscribed machine: let the late thread run
    }
  }
}

namespace {
std::unique_ptr<ThreadPool>& global_pool() {
  static std::unique_ptr<ThreadPool> pool;
  return pool;
}
int resolve_threads(int n) { return n > 0 ? n : cpu_features().logical_cpus; }
}  // namespace

ThreadPool& cpu_pool() {
  auto& pool = global_pool();
  if (!pool) pool = std::make_unique<ThreadPool>(resolve_threads(0));
  return *pool;
}

void set_cpu_threads(int n) {
  auto& pool = global_pool();
  int threads = resolve_threads(n);
  if (pool && pool->size() == threads) return;
  pool.reset();  // join the old workers before starting new ones
  pool = std::make_unique<ThreadPool>(threads);
}

int cpu_threads() { return cpu_pool().size(); }

}  // namespace tb::cpu
