// What this binary is: the commit it was built from, recorded with every result file,
// report and checkpoint. Defined in a source file generated at each build
// (cmake/git_commit.cmake), so it follows the checkout, not the commit the build folder
// was configured at.
#pragma once

namespace tb {

// The short commit hash, with "-dirty" when tracked files had changes; "unknown" outside git.
const char* build_commit();

}  // namespace tb
