#include "cli/option_text.h"

#include <fmt/format.h>

#include <sstream>

#include "core/error.h"
#include "data/data_api.h"
#include "nn/models.h"
#include "ops/backend.h"

namespace tb {

std::string model_option_help() {
  std::string s = "Model to train:";
  for (const auto& m : model_names()) s += "\n  " + m + ": " + model_summary(m);
  return s;
}

std::string dataset_option_help() {
  std::string s = "Dataset:";
  for (const auto& d : dataset_names()) s += " " + d;
  return s + " (digit-csv reads DIR/digit-csv/train.csv with header label,pixel0..pixel783)";
}

std::string impl_option_help() {
  std::string s = "Implementation (backend):";
  for (const auto& b : backend_names()) s += "\n  " + b + ": " + backend_description(b);
  return s;
}

std::vector<double> parse_ratio_list(const std::string& text, const std::string& option) {
  std::vector<double> out;
  if (text.empty()) return out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    try {
      size_t used = 0;
      out.push_back(std::stod(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw InputError(fmt::format("{} takes comma-separated numbers like 70,10,20; '{}' is not a "
                                   "number", option, item));
    }
  }
  return out;
}

}  // namespace tb
