// libFuzzer target: the input is a weights file, loaded by nn::load_weights into a small fixed
// model (Dense(2, 3, relu) → Dense(3, 2): "0.weight" (2, 3), "0.bias" (3), "1.weight" (3, 2),
// "1.bias" (2), 17 floats). load_weights may throw nn::DataError naming the file, and must then
// leave every parameter as it was, bit for bit. A load that succeeds must have found each
// parameter's values, as one range, in the file's data section. Anything else (another
// exception, a crash, a sanitizer report, more memory than -rss_limit_mb) is a finding. The same
// bytes also go to nn::load_model, which may build a module or throw DataError, nothing else.
#include <cstring>
#include <string_view>
#include <vector>

#include "fuzz_file.hpp"
#include "nn/data.hpp"  // DataError
#include "nn/layers.hpp"
#include "nn/serialize.hpp"

namespace {

constexpr std::size_t kParameters = 2 * 3 + 3 + 3 * 2 + 2;

struct Fixture {
  nn::Sequential model;
  std::vector<nn::Parameter*> parameters;
  std::vector<std::vector<float>> initial;  // what every input starts from

  Fixture() {
    model.add(nn::Dense(2, 3, nn::Activation::Relu, {.seed = 1}));
    model.add(nn::Dense(3, 2, nn::Activation::Linear, {.seed = 2}));
    parameters = model.parameters();
    for (nn::Parameter* p : parameters) initial.push_back(p->value);
  }

  void reset() {
    for (std::size_t i = 0; i < parameters.size(); ++i)
      std::copy(initial[i].begin(), initial[i].end(), parameters[i]->value.begin());
  }

  // Bit for bit (NaN included).
  bool unchanged() const {
    for (std::size_t i = 0; i < parameters.size(); ++i)
      if (std::memcmp(parameters[i]->value.data(), initial[i].data(),
                      initial[i].size() * sizeof(float)) != 0)
        return false;
    return true;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Fixture fixture;
  const std::string& path = fuzz::temp_path();
  fuzz::write_file(path, data, size);
  // The whole-model loader on the same bytes, from memory: a module, or a DataError (an
  // architecture may not claim more parameters than the file holds: -rss_limit_mb would see it).
  try {
    const nn::TensorFile file =
        nn::parse_safetensors(std::string_view(reinterpret_cast<const char*>(data), size), path);
    const std::unique_ptr<nn::Module> model = nn::load_model(file);
    if (model->parameter_count() > static_cast<std::int64_t>(size))
      fuzz::finding("load_model built more parameters than the file has bytes");
  } catch (const nn::DataError&) {
  }
  fixture.reset();
  if (!fuzz::loads(path, [&] { nn::load_weights(fixture.model, path); })) {
    if (!fixture.unchanged()) fuzz::finding("a failed load changed the model");
    return 0;
  }
  // Loaded: each parameter's values are one range of the data section (which may hold more: a
  // checkpoint's optimizer and training tensors).
  const std::string_view section = fuzz::data_section(data, size);
  if (section.size() < 4 * kParameters)
    fuzz::finding("loaded a file whose data section cannot hold the model's 17 floats");
  for (const nn::Parameter* p : fixture.parameters)
    if (!fuzz::in_section(section, p->value))
      fuzz::finding("a loaded parameter's values are not a range of the data section");
  return 0;
}
