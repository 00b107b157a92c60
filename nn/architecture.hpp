#pragma once
// A model's architecture as JSON, Keras-style: each module is {"class_name": …, "config": {…}}
// where the config holds its constructor's arguments (a Sequential's holds its layers, by name).
// Enough to rebuild any model made of registered layer types: the library's own (Dense,
// Sequential, …) and users' (register_layer_type). Weights are not part of it (serialize.hpp).
//
//   nlohmann::ordered_json a = nn::architecture(model);
//   // {"class_name":"Sequential","config":{"layers":[{"name":"0","class_name":"Dense",
//   //   "config":{"input_dim":784,"units":128,"activation":"relu"}}, …]}}
//   std::unique_ptr<nn::Module> again = nn::build_architecture(a);  // fresh parameters
//
// A user's layer type, so that save_model/load_model handle models containing it:
//
//   nn::register_layer_type<Scale>(
//       "Scale", [](const Scale& s) { return nlohmann::ordered_json{{"n", s.n}}; },
//       [](const nlohmann::ordered_json& c) {
//         return Scale(nn::integer_from<std::int64_t>(c.at("n"), "n"));
//       });

#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <typeindex>
#include <utility>

#include <nlohmann/json.hpp>

#include "nn/module.hpp"

namespace nn {

using Json = nlohmann::ordered_json;

/// What building a module from JSON may allocate: the parameter values the file actually holds.
/// A layer type's build checks each parameter tensor against it (claim) before allocating, so that
/// an architecture read from a file cannot ask for more memory than the file's weights fill.
class ParameterBudget {
 public:
  explicit ParameterBudget(std::int64_t values) : left_(values) {}
  /// Unlimited: for architectures not read from a file.
  static ParameterBudget unlimited() { return ParameterBudget(INT64_MAX); }
  /// Takes `values` parameter values for `what`; throws std::invalid_argument when more than is
  /// left (or `values` is negative).
  void claim(std::int64_t values, const std::string& what);

 private:
  std::int64_t left_;
};

/// `value` as an integer of type T (int, std::int64_t or std::uint64_t); throws
/// std::invalid_argument naming it as `what` unless it is a JSON integer within T's range. For
/// numbers read from a file: nlohmann's get<T>() casts a floating-point value (undefined behaviour
/// when out of range) and wraps an integer silently.
template <class T>
T integer_from(const Json& value, std::string_view what);

struct LayerType {
  std::string class_name;
  std::type_index type;
  /// The module's constructor arguments.
  std::function<Json(const Module&)> config;
  /// A new module from its config.
  std::function<std::unique_ptr<Module>(const Json& config, ParameterBudget& budget)> build;
};

/// Registers (or replaces) how modules of one type are described and rebuilt.
void register_layer_type(LayerType type);
template <std::derived_from<Module> M>
void register_layer_type(std::string class_name, std::function<Json(const M&)> config,
                         std::function<M(const Json&)> build) {
  register_layer_type(
      LayerType{std::move(class_name), std::type_index(typeid(M)),
                [config](const Module& m) { return config(static_cast<const M&>(m)); },
                [build](const Json& c, ParameterBudget&) -> std::unique_ptr<Module> {
                  return std::make_unique<M>(build(c));
                }});
}

/// The architecture of `model`. Throws std::invalid_argument naming the first module (by its path
/// in the tree, and its describe()) whose type is not registered.
Json architecture(const Module& model);
/// Whether every module of `model` is of a registered type (architecture() would succeed).
bool has_architecture(const Module& model);
/// A new module of that architecture, with freshly initialised parameters. Throws DataError naming
/// `source` and the place in the JSON (e.g. "layers[1] (Dense): units is -3, expected > 0") for an
/// unknown class name, a missing or ill-typed field, nesting deeper than 64, or parameters beyond
/// `budget`.
std::unique_ptr<Module> build_architecture(const Json& architecture,
                                           ParameterBudget budget = ParameterBudget::unlimited(),
                                           const std::string& source = "architecture");

}  // namespace nn
