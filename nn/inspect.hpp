#pragma once
// The module tree's names in the inspection tools (autodiff/inspect.hpp): graph pictures and
// anomaly reports show a parameter as "0.weight" rather than "parameter #3".
//
//   autodiff::DetectAnomaly anomaly;
//   nn::name_parameters(network);    // for the reports of this guard
//   autodiff::to_dot(loss, {.names = nn::parameter_names(network)});

#include <string>
#include <utility>
#include <vector>

#include "autodiff/inspect.hpp"
#include "nn/module.hpp"

namespace nn {

/// Each parameter's storage with its path in the module tree, for DotOptions::names.
inline std::vector<std::pair<const void*, std::string>> parameter_names(Module& module) {
  std::vector<std::pair<const void*, std::string>> names;
  for (const NamedParameter& p : module.named_parameters())
    names.emplace_back(p.parameter->value.data(), p.name);
  return names;
}

/// Names the parameters for the details being recorded (RecordDetails, DetectAnomaly): the
/// pictures and reports of this recording show their paths. Throws a TapeError without a guard.
inline void name_parameters(Module& module) {
  for (const NamedParameter& p : module.named_parameters())
    autodiff::name_storage(p.parameter->value.data(), p.name);
}

}  // namespace nn
