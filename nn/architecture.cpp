#include "nn/architecture.hpp"

#include <limits>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "nn/conv_layers.hpp"
#include "nn/data.hpp"  // DataError
#include "nn/layers.hpp"

namespace nn {

void ParameterBudget::claim(std::int64_t values, const std::string& what) {
  if (values < 0 || values > left_)
    throw std::invalid_argument(fmt::format(
        "{} needs {} parameter values, but the weights hold only {} more", what, values, left_));
  left_ -= values;
}

template <class T>
T integer_from(const Json& value, std::string_view what) {
  if (value.is_number_unsigned()) {
    if (std::in_range<T>(value.get<std::uint64_t>()))
      return static_cast<T>(value.get<std::uint64_t>());
  } else if (value.is_number_integer()) {
    if (std::in_range<T>(value.get<std::int64_t>()))
      return static_cast<T>(value.get<std::int64_t>());
  }
  throw std::invalid_argument(fmt::format("{} is {}, expected an integer in [{}, {}]", what,
                                          value.dump(), std::numeric_limits<T>::min(),
                                          std::numeric_limits<T>::max()));
}
template int integer_from<int>(const Json&, std::string_view);
template std::int64_t integer_from<std::int64_t>(const Json&, std::string_view);
template std::uint64_t integer_from<std::uint64_t>(const Json&, std::string_view);

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

// A (height, width) pair of integers, each ≥ `least`.
Size2D pair_field(const Json& config, const char* field, std::int64_t least) {
  const Json& value = config.at(field);
  if (!value.is_array() || value.size() != 2 || !value[0].is_number_integer() ||
      !value[1].is_number_integer() || value[0].get<std::int64_t>() < least ||
      value[1].get<std::int64_t>() < least)
    throw std::invalid_argument(fmt::format("{} is {}, expected [height, width], integers ≥ {}",
                                            field, value.dump(), least));
  return {value[0].get<std::int64_t>(), value[1].get<std::int64_t>()};
}

Padding padding_from(const Json& config) {
  const std::string name = config.at("padding").get<std::string>();
  for (Padding p : {Padding::Valid, Padding::Same})
    if (name == autodiff::to_string(p)) return p;
  throw std::invalid_argument(fmt::format("padding \"{}\" is not one of valid, same", name));
}

// The product of positive sizes, or an error when it overflows.
std::int64_t product(std::initializer_list<std::int64_t> sizes, const char* what) {
  std::int64_t n = 1;
  for (std::int64_t s : sizes) {
    if (s > INT64_MAX / n) throw std::invalid_argument(fmt::format("{} overflows", what));
    n *= s;
  }
  return n;
}

Json window_config(const autodiff::Window2D& w) {
  return Json{{"pool_size", {w.height, w.width}},
              {"strides", {w.stride_h, w.stride_w}},
              {"padding", autodiff::to_string(w.padding)}};
}

template <class Pool>
LayerType pooling_type(const char* class_name) {
  return LayerType{
      class_name, std::type_index(typeid(Pool)),
      [](const Module& m) { return window_config(static_cast<const Pool&>(m).window()); },
      [](const Json& c, ParameterBudget&) -> std::unique_ptr<Module> {
        return std::make_unique<Pool>(pair_field(c, "pool_size", 1),
                                      PoolOptions{pair_field(c, "strides", 1), padding_from(c)});
      }};
}

// A layer type whose config is empty.
template <class M>
LayerType plain_type(const char* class_name) {
  return LayerType{class_name, std::type_index(typeid(M)),
                   [](const Module&) { return Json::object(); },
                   [](const Json&, ParameterBudget&) -> std::unique_ptr<Module> {
                     return std::make_unique<M>();
                   }};
}

void add_convnet_layer_types(std::vector<LayerType>& types) {
  types.push_back(LayerType{
      "Conv2D", std::type_index(typeid(Conv2D)),
      [](const Module& m) {
        const auto& c = static_cast<const Conv2D&>(m);
        const Conv2DOptions& o = c.options();
        return Json{{"in_channels", c.in_channels()},
                    {"filters", c.filters()},
                    {"kernel_size", c.kernel_size()},
                    {"strides", o.strides},
                    {"padding", autodiff::to_string(o.padding)},
                    {"use_bias", o.use_bias},
                    {"activation", to_string(c.activation())}};
      },
      [](const Json& c, ParameterBudget& budget) -> std::unique_ptr<Module> {
        const std::int64_t in = positive(c, "in_channels"), filters = positive(c, "filters");
        const Size2D kernel = pair_field(c, "kernel_size", 1);
        Conv2DOptions options;
        options.strides = pair_field(c, "strides", 1);
        options.padding = padding_from(c);
        options.use_bias = c.at("use_bias").get<bool>();
        const Activation activation = activation_from(c.at("activation").get<std::string>());
        budget.claim(product({kernel[0], kernel[1], in, filters}, "the kernel's size"),
                     fmt::format("weight ({}, {}, {}, {})", kernel[0], kernel[1], in, filters));
        if (options.use_bias) budget.claim(filters, fmt::format("bias ({})", filters));
        return std::make_unique<Conv2D>(in, filters, kernel, activation, options);
      }});
  types.push_back(pooling_type<MaxPooling2D>("MaxPooling2D"));
  types.push_back(pooling_type<AveragePooling2D>("AveragePooling2D"));
  types.push_back(plain_type<GlobalAveragePooling2D>("GlobalAveragePooling2D"));
  types.push_back(plain_type<Flatten>("Flatten"));
  types.push_back(
      LayerType{"Reshape", std::type_index(typeid(Reshape)),
                [](const Module& m) {
                  return Json{{"target_shape", static_cast<const Reshape&>(m).target()}};
                },
                [](const Json& c, ParameterBudget&) -> std::unique_ptr<Module> {
                  const Json& target = c.at("target_shape");
                  if (!target.is_array() || target.size() >= std::size_t(autodiff::Shape::kMaxRank))
                    throw std::invalid_argument(
                        fmt::format("target_shape is {}, expected an array of at most {} integers",
                                    target.dump(), autodiff::Shape::kMaxRank - 1));
                  std::vector<std::int64_t> dims;
                  for (const Json& d : target)
                    dims.push_back(integer_from<std::int64_t>(d, "a dimension of target_shape"));
                  return std::make_unique<Reshape>(std::move(dims));
                }});
  types.push_back(
      LayerType{"Dropout", std::type_index(typeid(Dropout)),
                [](const Module& m) {
                  const auto& d = static_cast<const Dropout&>(m);
                  return Json{{"rate", d.rate()}, {"seed", d.options().seed}};
                },
                [](const Json& c, ParameterBudget&) -> std::unique_ptr<Module> {
                  return std::make_unique<Dropout>(
                      c.at("rate").get<double>(),
                      DropoutOptions{integer_from<std::uint64_t>(c.at("seed"), "seed")});
                }});
  types.push_back(LayerType{
      "BatchNormalization", std::type_index(typeid(BatchNormalization)),
      [](const Module& m) {
        const auto& b = static_cast<const BatchNormalization&>(m);
        return Json{{"channels", b.channels()},
                    {"momentum", b.options().momentum},
                    {"epsilon", b.options().epsilon}};
      },
      [](const Json& c, ParameterBudget& budget) -> std::unique_ptr<Module> {
        const std::int64_t channels = positive(c, "channels");
        // gamma, beta and the two moving statistics.
        for (const char* name : {"gamma", "beta", "moving_mean", "moving_variance"})
          budget.claim(channels, fmt::format("{} ({})", name, channels));
        return std::make_unique<BatchNormalization>(
            channels,
            BatchNormOptions{c.at("momentum").get<double>(), c.at("epsilon").get<double>()});
      }});
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
  add_convnet_layer_types(types);
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
