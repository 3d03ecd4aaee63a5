#include "core/interrupt.h"

#include <csignal>

namespace tb {
namespace {
volatile std::sig_atomic_t g_interrupted = 0;

void on_signal(int) {
  // A second Ctrl-C while we are saving should not be lost, nor kill the save half-way:
  // the flag stays set and the loop exits at its next check.
  g_interrupted = 1;
}
}  // namespace

void install_interrupt_handler() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

bool interrupt_requested() { return g_interrupted != 0; }
void clear_interrupt() { g_interrupted = 0; }

}  // namespace tb
