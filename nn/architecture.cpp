#include "nn/architecture.hpp"

#include <mutex>
#include <optional>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

#include "nn/data.hpp"  // DataError
#include "nn/layers.hpp"

namespace nn {

void ParameterBudget::claim(std::int64_t values, const std::string& what) {
  if (values < 0 || values > left_)
    throw std::invalid_argument(fmt::format(
        "{} needs {} parameter values, but the weights hold only {} more", what, values, left_));
  left_ -= values;
}

namespace {

constexpr int kMaxDepth = 64;

// Thrown inside build_module with the place in the JSON; turned into a DataError at the top.
struct BuildError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

Activation activation_from(const std::string& name) {
  for (Activation a : {Activation::Linear, Activation::Relu, Activation::Sigmoid, Activation::Tanh,
                       Activation::Softmax})
    if (name == to_string(a)) return a;
  throw std::invalid_argument(
      fmt::format("activation \"{}\" is not one of linear, relu, sigmoid, tanh, softmax", name));
}

// A positive integer field of a config.
std::int64_t positive(const Json& config, const char* field) {
  const Json& value = config.at(field);
  if (!value.is_number_integer() || value.get<std::int64_t>() <= 0)
    throw std::invalid_argument(
        fmt::format("{} is {}, expected a positive integer", field, value.dump()));
  return value.get<std::int64_t>();
}

std::unique_ptr<Module> build_module(const Json& node, ParameterBudget& budget);

std::vector<LayerType> library_layer_types() {
  std::vector<LayerType> types;
  types.push_back(LayerType{
      "Dense", std::type_index(typeid(Dense)),
      [](const Module& m) {
        const auto& d = static_cast<const Dense&>(m);
        return Json{
            {"input_dim", d.in()}, {"units", d.out()}, {"activation", to_string(d.activation())}};
      },
      [](const Json& c, ParameterBudget& budget) -> std::unique_ptr<Module> {
        const std::int64_t in = positive(c, "input_dim"), out = positive(c, "units");
        const Activation activation = activation_from(c.at("activation").get<std::string>());
        // in·out + out, checked for overflow by the budget (which is at most INT64_MAX).
        if (in > INT64_MAX / out) throw std::invalid_argument("input_dim × units overflows");
        budget.claim(in * out, fmt::format("weight ({}, {})", in, out));
        budget.claim(out, fmt::format("bias ({})", out));
        return std::make_unique<Dense>(in, out, activation);
      }});
  types.push_back(LayerType{
      "Sequential", std::type_index(typeid(Sequential)),
      [](const Module& m) {
        Json layers = Json::array();
        for (std::size_t i = 0; i < m.child_count(); ++i) {
          Json layer = {{"name", m.child_name(i)}};
          try {
            const Json child = architecture(const_cast<Module&>(m).child(i));
            for (const auto& [key, value] : child.items()) layer[key] = value;
          } catch (const std::invalid_argument& e) {
            throw std::invalid_argument(fmt::format("layer \"{}\": {}", m.child_name(i), e.what()));
          }
          layers.push_back(std::move(layer));
        }
        return Json{{"layers", std::move(layers)}};
      },
      [](const Json& c, ParameterBudget& budget) -> std::unique_ptr<Module> {
        const Json& layers = c.at("layers");
        if (!layers.is_array()) throw std::invalid_argument("layers is not an array");
        auto sequential = std::make_unique<Sequential>();
        for (std::size_t i = 0; i < layers.size(); ++i) {
          const Json& layer = layers[i];
          try {
            if (!layer.is_object() || !layer.contains("name") || !layer.at("name").is_string())
              throw BuildError("not an object with a \"name\" string");
            sequential->add(layer.at("name").get<std::string>(), build_module(layer, budget));
          } catch (const BuildError& e) {
            throw BuildError(fmt::format("layers[{}]{}", i, e.what()));
          }
        }
        return sequential;
      }});
  return types;
}

struct Registry {
  std::mutex mutex;
  std::vector<LayerType> types = library_layer_types();
};

Registry& registry() {
  static Registry r;
  return r;
}

// A copy: the registry may grow (and move its entries) while the caller uses it.
template <class Matches>
std::optional<LayerType> find_type(Matches&& matches) {
  Registry& r = registry();
  const std::lock_guard lock(r.mutex);
  for (const LayerType& t : r.types)
    if (matches(t)) return t;
  return std::nullopt;
}

thread_local int build_depth = 0;

// One module from {"class_name": …, "config": {…}}. Errors are BuildErrors whose text starts with
// the place (": …" at this level; callers prepend "layers[i]").
std::unique_ptr<Module> build_module(const Json& node, ParameterBudget& budget) {
  struct Depth {
    Depth() {
      if (build_depth == kMaxDepth)
        throw BuildError(fmt::format(": nested more than {} modules deep", kMaxDepth));
      ++build_depth;
    }
    ~Depth() { --build_depth; }
  };
  if (!node.is_object()) throw BuildError(": not a JSON object");
  const auto class_name = node.find("class_name");
  if (class_name == node.end() || !class_name->is_string())
    throw BuildError(": no \"class_name\" string");
  const std::string& name = class_name->get_ref<const std::string&>();
  const std::optional<LayerType> type =
      find_type([&](const LayerType& t) { return t.class_name == name; });
  if (!type)
    throw BuildError(fmt::format(" ({}): not a registered layer type (register_layer_type)", name));
  const auto config = node.find("config");
  if (config == node.end() || !config->is_object())
    throw BuildError(fmt::format(" ({}): no \"config\" object", name));
  const Depth depth;
  try {
    return type->build(*config, budget);
  } catch (const BuildError& e) {
    throw BuildError(fmt::format(" ({}).{}", name, e.what()));
  } catch (const nlohmann::json::exception& e) {
    throw BuildError(fmt::format(" ({}): {}", name, e.what()));
  } catch (const std::invalid_argument& e) {
    throw BuildError(fmt::format(" ({}): {}", name, e.what()));
  } catch (const std::length_error& e) {
    throw BuildError(fmt::format(" ({}): {}", name, e.what()));
  }
}

}  // namespace

void register_layer_type(LayerType type) {
  Registry& r = registry();
  const std::lock_guard lock(r.mutex);
  for (LayerType& t : r.types)
    if (t.type == type.type || t.class_name == type.class_name) {
      t = std::move(type);
      return;
    }
  r.types.push_back(std::move(type));
}

Json architecture(const Module& model) {
  const std::type_index model_type(typeid(model));
  const std::optional<LayerType> type =
      find_type([&](const LayerType& t) { return t.type == model_type; });
  if (!type)
    throw std::invalid_argument(fmt::format(
        "{} is not of a registered layer type: save its weights (save_weights), or register it "
        "(register_layer_type)",
        model.describe()));
  return Json{{"class_name", type->class_name}, {"config", type->config(model)}};
}

bool has_architecture(const Module& model) {
  try {
    architecture(model);
    return true;
  } catch (const std::invalid_argument&) {
    return false;
  }
}

std::unique_ptr<Module> build_architecture(const Json& architecture, ParameterBudget budget,
                                           const std::string& source) {
  try {
    return build_module(architecture, budget);
  } catch (const BuildError& e) {
    std::string place = e.what();
    throw DataError(fmt::format("{}: the architecture{}", source, place));
  }
}

}  // namespace nn
