// A persistent pool for the CPU kernels: the calling thread plus size()-1 workers.
//
// Work is split statically: chunk i of n always goes to thread i, with no work stealing, so a
// kernel that partitions its output by thread index computes each element on a fixed thread
// in a fixed order and its results do not depend on timing. (Kernels that must give the same
// bits for every thread count, like sgemm, additionally keep their summation order independent
// of the partition.) Dispatching allocates nothing: the task is passed as a type-erased
// reference to the caller's callable. Idle workers spin briefly (a training step issues many
// back-to-back kernels) and then sleep on a condition variable.
//
// Nesting: run() called from inside a task of any pool, or while another thread is using this
// pool, executes the task on the calling thread alone (fn(0, 1)) instead of deadlocking.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace tb::cpu {

// A non-owning reference to a callable `void(int thread, int threads)`.
class TaskRef {
 public:
  TaskRef() = default;
  template <class F>  // F may be const-qualified
  explicit TaskRef(F& fn)
      : object_(const_cast<void*>(static_cast<const void*>(&fn))),
        call_([](void* object, int thread, int threads) {
          (*static_cast<F*>(object))(thread, threads);
        }) {}
  void operator()(int thread, int threads) const { call_(object_, thread, threads); }

 private:
  void* object_ = nullptr;
  void (*call_)(void*, int, int) = nullptr;
};

// The half-open range [lo, hi) that chunk `i` of `n` covers when [begin, end) is cut into n
// contiguous chunks whose sizes differ by at most one (the first ones get the extra items).
inline std::pair<int64_t, int64_t> static_chunk(int64_t begin, int64_t end, int i, int n) {
  int64_t total = end > begin ? end - begin : 0, base = total / n, extra = total % n;
  int64_t lo = begin + i * base + (i < extra ? i : extra);
  return {lo, lo + base + (i < extra ? 1 : 0)};
}

class ThreadPool {
 public:
  // threads >= 1 (values below are raised to 1).
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return int(workers_.size()) + 1; }

  // Calls fn(thread, threads) once on each of `threads` threads at the same time (thread 0
  // is the caller) and returns when all have returned. threads is size(), or 1 when nested
  // (see above). An exception thrown by fn is rethrown here (the first one, if several).
  template <class F>
  void run(F&& fn) {
    auto& ref = fn;
    run_task(TaskRef(ref));
  }

  // fn(i) for every i in [begin, end); thread t gets static_chunk(begin, end, t, threads).
  template <class F>
  void parallel_for(int64_t begin, int64_t end, F&& fn) {
    parallel_for_range(begin, end, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) fn(i);
    });
  }

  // fn(lo, hi) once per thread with its static chunk (skipped where the chunk is empty).
  template <class F>
  void parallel_for_range(int64_t begin, int64_t end, F&& fn) {
    if (end <= begin) return;
    if (end - begin == 1) {
      fn(begin, end);
      return;
    }
    run([&](int thread, int threads) {
      auto [lo, hi] = static_chunk(begin, end, thread, threads);
      if (lo < hi) fn(lo, hi);
    });
  }

  // True on a thread that is executing a task of some pool.
  static bool inside_task();

 private:
  void run_task(TaskRef task);
  void worker_main(int thread);
  void run_inline(TaskRef task);

  std::vector<std::thread> workers_;
  std::mutex busy_;  // held by the thread that owns the workers for one run()
  // Dispatch: the task is published, then generation_ is bumped; workers compare it with the
  // last generation they ran.
  TaskRef task_;
  std::atomic<uint32_t> generation_{0};
  std::atomic<int> pending_{0};  // workers still running the current task
  std::atomic<int> sleepers_{0};
  std::mutex sleep_mutex_;
  std::condition_variable wake_;
  std::atomic<bool> stop_{false};
  std::mutex error_mutex_;
  std::exception_ptr error_;
};

// A barrier for the threads of one run() (all of them must call it). It spins, then yields:
// the participants are known to be running, so sleeping would only add latency.
class SpinBarrier {
 public:
  SpinBarrier() = default;
  explicit SpinBarrier(int threads) : threads_(threads) {}
  // Only while no thread is waiting in it.
  void reset(int threads) {
    threads_ = threads;
    arrived_.store(0, std::memory_order_relaxed);
  }
  void arrive_and_wait();

 private:
  int threads_ = 1;
  alignas(64) std::atomic<int> arrived_{0};
  alignas(64) std::atomic<uint32_t> generation_{0};
};

// The process-wide pool the CPU backend uses. Created on first use with all usable CPUs
// unless set_cpu_threads() was called before.
ThreadPool& cpu_pool();
// n <= 0: every CPU in this process's affinity mask. Replaces the pool; must not be called
// while a kernel is running on it.
void set_cpu_threads(int n);
int cpu_threads();

}  // namespace tb::cpu
