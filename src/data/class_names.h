// The class names each dataset reports, in label order.
#pragma once
#include <string>
#include <vector>

namespace tb {

inline std::vector<std::string> digit_class_names() {
  return {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
}

inline std::vector<std::string> fashion_mnist_class_names() {
  return {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
          "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
}

inline std::vector<std::string> cifar10_class_names() {
  return {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
}

}  // namespace tb
