// Ctrl-C (SIGINT) and SIGTERM: the handler only sets a flag; long-running loops poll it at a
// safe point (a step boundary), save what they have, and stop.
#pragma once

namespace tb {

void install_interrupt_handler();
bool interrupt_requested();
void clear_interrupt();

}  // namespace tb
