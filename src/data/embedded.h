// Files compiled into the binary (cmake/embed.cmake generates the definition from
// assets/sample): the 1,000 + 200 image MNIST sample, the last-resort offline data source.
// Names: mnist-train-images-idx3-ubyte.gz, mnist-train-labels-idx1-ubyte.gz,
// mnist-t10k-images-idx3-ubyte.gz, mnist-t10k-labels-idx1-ubyte.gz.
#pragma once
#include <string_view>

namespace tb {

// The embedded file called name, or an empty view if there is none.
std::string_view embedded_file(std::string_view name);

}  // namespace tb
