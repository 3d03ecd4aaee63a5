// Help texts and small parsers shared by subcommands, built from the registries so that
// --help always lists what this build really has.
#pragma once
#include <string>
#include <vector>

namespace tb {

std::string model_option_help();
std::string dataset_option_help();
std::string impl_option_help();
// "70,10,20" -> {70, 10, 20}; "" -> {}. Throws InputError naming the option on bad text.
std::vector<double> parse_ratio_list(const std::string& text, const std::string& option);

}  // namespace tb
