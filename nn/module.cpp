#include "nn/module.hpp"

#include <stdexcept>

#include <fmt/format.h>

namespace nn {

void Module::check_new_name(const std::string& name) const {
  if (name.empty() || name.find('.') != std::string::npos)
    throw std::invalid_argument(
        fmt::format("{}: the name \"{}\" is not allowed: expected a non-empty name without '.'",
                    describe(), name));
  for (const auto& [existing, _] : parameters_)
    if (existing == name)
      throw std::invalid_argument(
          fmt::format("{}: a parameter named \"{}\" is already registered", describe(), name));
  for (const auto& [existing, _] : buffers_)
    if (existing == name)
      throw std::invalid_argument(
          fmt::format("{}: a buffer named \"{}\" is already registered", describe(), name));
  for (const auto& [existing, _] : children_)
    if (existing == name)
      throw std::invalid_argument(
          fmt::format("{}: a child named \"{}\" is already registered", describe(), name));
  for (const auto& [existing, _] : counters_)
    if (existing == name)
      throw std::invalid_argument(
          fmt::format("{}: a counter named \"{}\" is already registered", describe(), name));
}

Parameter& Module::register_parameter(std::string name, const Shape& shape) {
  return register_tensor(std::move(name), shape, Entry::Parameter);
}

Parameter& Module::register_buffer(std::string name, const Shape& shape) {
  return register_tensor(std::move(name), shape, Entry::Buffer);
}

Parameter& Module::register_tensor(std::string name, const Shape& shape, Entry kind) {
  check_new_name(name);
  auto owned = std::make_unique<Parameter>(name, shape);
  Parameter& p = *owned;
  (kind == Entry::Parameter ? parameters_ : buffers_)
      .emplace_back(std::move(name), std::move(owned));
  registered_.push_back(kind);
  return p;
}

std::uint64_t& Module::register_counter(std::string name) {
  check_new_name(name);
  counters_.emplace_back(std::move(name), std::make_unique<std::uint64_t>(0));
  return *counters_.back().second;
}

void Module::adopt(std::string name, std::unique_ptr<Module> child) {
  check_new_name(name);
  child->train(training_);
  children_.emplace_back(std::move(name), std::move(child));
  registered_.push_back(Entry::Child);
}

template <bool kNamed, class F>
void Module::for_each_parameter(const std::string& prefix, bool parameters, bool buffers, F&& f) {
  std::size_t parameter = 0, buffer = 0, child = 0;
  for (const Entry entry : registered_) {
    if (entry == Entry::Child) {
      auto& [name, module] = children_[child++];
      module->for_each_parameter<kNamed>(kNamed ? prefix + name + "." : prefix, parameters, buffers,
                                         f);
    } else if (entry == Entry::Parameter) {
      auto& [name, p] = parameters_[parameter++];
      if (parameters) f(prefix, name, p.get());
    } else {
      auto& [name, b] = buffers_[buffer++];
      if (buffers) f(prefix, name, b.get());
    }
  }
}

std::vector<NamedParameter> Module::named(bool parameters, bool buffers) {
  std::vector<NamedParameter> all;
  for_each_parameter<true>("", parameters, buffers,
                           [&](const std::string& prefix, const std::string& name, Parameter* p) {
                             all.push_back({prefix + name, p});
                           });
  return all;
}

std::vector<NamedParameter> Module::named_parameters() { return named(true, false); }
std::vector<NamedParameter> Module::named_buffers() { return named(false, true); }
std::vector<NamedParameter> Module::named_state() { return named(true, true); }

std::vector<std::pair<std::string, std::uint64_t*>> Module::named_counters() {
  std::vector<std::pair<std::string, std::uint64_t*>> all;
  for (auto& [name, counter] : counters_) all.emplace_back(name, counter.get());
  for (auto& [child_name, child] : children_)
    for (auto& [name, counter] : child->named_counters())
      all.emplace_back(child_name + "." + name, counter);
  return all;
}

void Module::collect_parameters(std::vector<Parameter*>& out) {
  out.clear();
  for_each_parameter<false>(
      "", true, false,
      [&](const std::string&, const std::string&, Parameter* p) { out.push_back(p); });
}

std::vector<Parameter*> Module::parameters() {
  std::vector<Parameter*> all;
  collect_parameters(all);
  return all;
}

std::int64_t Module::parameter_count() {
  std::int64_t n = 0;
  for (Parameter* p : parameters()) n += p->shape.size();
  return n;
}

Module& Module::child(std::size_t index) {
  if (index >= children_.size())
    throw std::out_of_range(
        fmt::format("{}: no child {}, it has {}", describe(), index, children_.size()));
  return *children_[index].second;
}

Module& Module::child(std::string_view name) {
  std::string names;
  for (auto& [existing, child] : children_) {
    if (existing == name) return *child;
    names += (names.empty() ? "" : ", ") + existing;
  }
  throw std::out_of_range(fmt::format("{}: no child named \"{}\" (children: {})", describe(), name,
                                      names.empty() ? "none" : names));
}

const std::string& Module::child_name(std::size_t index) const {
  if (index >= children_.size())
    throw std::out_of_range(
        fmt::format("{}: no child {}, it has {}", describe(), index, children_.size()));
  return children_[index].first;
}

void Module::train(bool training) {
  training_ = training;
  for (auto& [_, child] : children_) child->train(training);
}

void Module::set_batch_share(const BatchShare& share) {
  on_batch_share(share);
  for (auto& [_, child] : children_) child->set_batch_share(share);
}

void Module::throw_wrong_type(const std::string& which, const std::string& what) {
  throw std::invalid_argument(
      fmt::format("child {} is a {}, not of the type asked for", which, what));
}

}  // namespace nn
