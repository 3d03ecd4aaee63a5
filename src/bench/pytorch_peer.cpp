#include "bench/pytorch_peer.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <ostream>

#include "bench/run_plan.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/interrupt.h"
#include "data/subprocess.h"

namespace tb {
namespace {

namespace fs = std::filesystem;

std::string last_line(const std::string& text) {
  std::string t = text;
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
  const size_t nl = t.rfind('\n');
  return nl == std::string::npos ? t : t.substr(nl + 1);
}

PythonProbe probe() {
  PythonProbe p;
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("TRAINBENCH_PYTHON"); env && *env) candidates.push_back(env);
  candidates.push_back("python3");
  candidates.push_back("/usr/bin/python3");
  for (const std::string& py : candidates) {
    if (!program_available(py)) {
      p.tried.push_back(py + " (not found)");
      continue;
    }
    const ProcessResult r =
        run_process({py, "-c",
                     "import torch, numpy; print(torch.__version__, torch.cuda.is_available())"},
                    "", 120);
    if (r.started && r.exit_code == 0 && !r.timed_out) {
      // "2.11.0+cu130 True": the version, then whether PyTorch sees a GPU.
      const std::string line = last_line(r.output);
      const size_t space = line.rfind(' ');
      p.python = py;
      p.torch_version = line.substr(0, space);
      p.cuda = space != std::string::npos && line.substr(space + 1) == "True";
      return p;
    }
    const std::string why = r.timed_out ? "timed out" : last_line(r.output);
    p.tried.push_back(py + " (" + (why.empty() ? "exit " + std::to_string(r.exit_code) : why) +
                      ")");
  }
  return p;
}

std::string executable_dir() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? "" : exe.parent_path().string();
}

struct PeerExit {
  int code = -1;
  std::string tail;  // the last few KiB of its output, for error messages
};

// Runs argv with stdout and stderr through a pipe, copying every chunk to `log` as it comes
// (the peer prints a line per epoch). The child stays in our process group, so a Ctrl-C at
// the terminal reaches it too.
PeerExit run_streaming(const std::vector<std::string>& argv, std::ostream& log) {
  int fds[2];
  TB_INPUT_CHECK(::pipe(fds) == 0, "cannot start the PyTorch peer: pipe: {}", std::strerror(errno));
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    throw InputError(fmt::format("cannot start the PyTorch peer: fork: {}", std::strerror(errno)));
  }
  if (pid == 0) {
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::dup2(fds[1], 1);
    ::dup2(fds[1], 2);
    ::close(fds[0]);
    ::close(fds[1]);
    ::execvp(args[0], args.data());
    const std::string msg = std::string("cannot run ") + args[0] + ": " + std::strerror(errno) + "\n";
    if (::write(2, msg.data(), msg.size()) < 0) {
    }
    _exit(127);
  }
  ::close(fds[1]);
  PeerExit out;
  char buf[4096];
  for (;;) {
    const ssize_t got = ::read(fds[0], buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    log.write(buf, got);
    log.flush();
    out.tail.append(buf, size_t(got));
    if (out.tail.size() > 8192) out.tail.erase(0, out.tail.size() - 4096);
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  out.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return out;
}

}  // namespace

const PythonProbe& probe_python_with_torch() {
  static const PythonProbe cached = probe();
  return cached;
}

std::optional<std::string> find_python_with_torch() { return probe_python_with_torch().python; }

std::string pytorch_unavailable_message() {
  std::string tried;
  for (const auto& t : probe_python_with_torch().tried) tried += (tried.empty() ? "" : ", ") + t;
  return fmt::format(
      "pytorch rows skipped: no Python with torch found (tried {}); install python3-torch "
      "(scripts/install-deps.sh does) or set TRAINBENCH_PYTHON",
      tried);
}

std::string find_peer_script(const std::string& script) {
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("TRAINBENCH_PEERS_DIR"); env && *env) dirs.push_back(env);
  const std::string exe = executable_dir();
  if (!exe.empty()) {
    dirs.push_back(exe + "/../peers");
    dirs.push_back(exe + "/../share/trainbench/peers");
  }
#ifdef TB_PEERS_DIR
  dirs.push_back(TB_PEERS_DIR);
#endif
  std::string looked;
  for (const auto& d : dirs) {
    const fs::path p = fs::path(d) / "pytorch" / script;
    if (fs::exists(p)) return fs::absolute(p).lexically_normal().string();
    looked += (looked.empty() ? "" : ", ") + p.string();
  }
  throw InputError(fmt::format("the PyTorch peer's {} was not found (looked at {}); set "
                               "TRAINBENCH_PEERS_DIR to the peers/ folder of the source tree",
                               script, looked));
}

nlohmann::json run_pytorch_peer(const TrainConfig& config, const std::string& plan_path,
                                const PytorchPeerOptions& options, std::ostream& log) {
  const auto python = find_python_with_torch();
  if (!python) throw InputError(pytorch_unavailable_message());
  const std::string script = find_peer_script("train.py");
  TrainConfig peer_config = config;
  peer_config.impl = "pytorch";
  write_run_plan(peer_config, plan_path);

  const std::string record_path = plan_path + ".record.json";
  std::error_code ec;
  fs::remove(record_path, ec);
  std::vector<std::string> argv = {*python, "-u", script, "--plan", plan_path, "--device",
                                   options.device, "--threads", std::to_string(config.threads),
                                   "--precision", config.precision, "--record", record_path};
  if (options.compile) argv.push_back("--compile");
  if (options.channels_last) argv.push_back("--channels-last");
  if (options.cudnn_benchmark) argv.push_back("--cudnn-benchmark");
  if (!options.save_weights.empty()) {
    argv.push_back("--save-weights");
    argv.push_back(options.save_weights);
  }
  const PeerExit exit = run_streaming(argv, log);
  if (interrupt_requested())
    return {{"schema", "trainbench.run"}, {"kind", "train"}, {"status", "interrupted"},
            {"config", to_json(peer_config)}};
  if (!fs::exists(record_path))
    throw InputError(fmt::format("the PyTorch peer ({} {}) failed with exit code {} and wrote no "
                                 "record; its last output:\n{}",
                                 *python, script, exit.code, exit.tail));
  nlohmann::json record;
  try {
    record = nlohmann::json::parse(read_file(record_path));
  } catch (const nlohmann::json::exception& e) {
    throw InputError(fmt::format("{}: the PyTorch peer's record is not JSON: {}", record_path,
                                 e.what()));
  }
  fs::remove(record_path, ec);
  return record;
}

nlohmann::json run_pytorch_peer(const TrainConfig& config, const PytorchPeerOptions& options,
                                std::ostream& log) {
  // A fresh folder per call (mkdtemp): concurrent runs, and runs of one process, never share.
  std::string pattern = (fs::temp_directory_path() / "trainbench-pytorch-XXXXXX").string();
  TB_INPUT_CHECK(::mkdtemp(pattern.data()) != nullptr, "cannot make a temporary folder in {}: {}",
                 fs::temp_directory_path().string(), std::strerror(errno));
  const fs::path dir = pattern;
  struct Cleanup {
    fs::path dir;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } cleanup{dir};
  return run_pytorch_peer(config, (dir / "plan.json").string(), options, log);
}

}  // namespace tb
