// libFuzzer target: the input is a checkpoint, loaded by nn::load_checkpoint into a fixed small
// trainer: Dense(2, 3, relu) → Dropout(0.5) → Dense(3, 2, softmax) with Adam, trained 2 epochs on
// 6 rows (so that Adam has its slots and step count, the progress an order, a generator and a
// history, and Dropout a counter). load_checkpoint may throw nn::DataError naming the file, and
// must then leave everything reachable through the public API as it was, bit for bit: the
// parameters and buffers, the counters, the optimizer's state (type, settings, step count, slots)
// and the training progress (epoch, shuffle, order, generator, history). A load that succeeds
// must have found each parameter's and each optimizer slot's values, as one range, in the file's
// data section; training then continues from it (one more epoch when the checkpoint's epoch is
// under 64, else none: fit must return at once) or refuses with std::invalid_argument; and the
// fixture's own checkpoint, loaded next, must give back exactly the state it was saved from.
// Anything else (another exception, a crash, a sanitizer report, more memory than -rss_limit_mb) is
// a finding.
#include <bit>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string_view>
#include <type_traits>
#include <vector>

#include "checkpoint_trainer.hpp"
#include "fuzz_file.hpp"
#include "nn/model.hpp"
#include "nn/serialize.hpp"

namespace {

template <class T>
requires std::is_trivially_copyable_v<T>
void put(std::string& out, const T& value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof value);
}

void put(std::string& out, std::string_view text) {
  put(out, text.size());
  out.append(text);
}

template <class T>
void put_all(std::string& out, const std::vector<T>& values) {
  put(out, values.size());
  if (!values.empty())
    out.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

// Everything load_checkpoint may change, as bytes (so NaNs and signed zeros compare exactly).
std::string state_of(nn::Model& model) {
  std::string out;
  for (const nn::NamedParameter& p : model.network().named_state()) {
    put(out, p.name);
    put_all(out, p.parameter->value);
  }
  for (const auto& [name, counter] : model.network().named_counters()) {
    put(out, name);
    put(out, *counter);
  }
  const nn::OptimizerState optimizer = model.optimizer().state();
  put(out, optimizer.type);
  for (const auto& [name, value] : optimizer.settings) {
    put(out, name);
    put(out, value);
  }
  put(out, optimizer.iterations);
  for (const auto& [name, buffers] : optimizer.slots) {
    put(out, name);
    for (const std::vector<float>& buffer : buffers) put_all(out, buffer);
  }
  const nn::TrainingProgress& progress = model.progress();
  put(out, progress.epoch);
  put(out, progress.shuffle);
  put_all(out, progress.order);
  put(out, progress.generator);
  for (const nn::EpochLog& e : progress.history.epochs) {
    put(out, e.epoch);
    put(out, e.seconds);
    for (const auto& [name, value] : e.values()) {
      put(out, name);
      put(out, value);
    }
  }
  put(out, progress.history.stop_reason);
  put(out, progress.history.diverged);
  return out;
}

nn::TensorData rows() {
  const std::vector<float> x = {0.5f, -1.0f, 1.5f,  0.25f, -0.75f, 2.0f,
                                1.0f, 1.0f,  -2.0f, 0.5f,  0.0f,   -0.5f};
  const std::vector<std::int32_t> labels = {0, 1, 1, 0, 1, 0};
  return nn::TensorData::with_labels(x, {6, 2}, labels, 2);
}

nn::FitOptions epochs(int initial_epoch, int epochs) {
  return {
      .batch_size = 2, .epochs = epochs, .initial_epoch = initial_epoch, .seed = 5, .verbose = 0};
}

struct Fixture {
  nn::TensorData data = rows();
  nn::Model model = fuzz::checkpoint_trainer();
  std::string good;   // the checkpoint of the state below, as save_checkpoint wrote it
  std::string state;  // state_of(model) when it was saved

  Fixture() {
    model.fit(data, epochs(0, 2));
    const std::string& path = fuzz::temp_path();
    nn::save_checkpoint(model, path);
    std::ifstream in(path, std::ios::binary);
    good.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    state = state_of(model);
  }

  // Back to the saved state, through the fixture's own checkpoint.
  void restore() {
    const std::string& path = fuzz::temp_path();
    fuzz::write_file(path, reinterpret_cast<const std::uint8_t*>(good.data()), good.size());
    nn::load_checkpoint(model, path);
    if (state_of(model) != state)
      fuzz::finding("the fixture's checkpoint did not restore the state it was saved from");
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Fixture fixture;
  const std::string& path = fuzz::temp_path();
  fuzz::write_file(path, data, size);
  if (!fuzz::loads(path, [&] { nn::load_checkpoint(fixture.model, path); })) {
    if (state_of(fixture.model) != fixture.state)
      fuzz::finding("a failed load changed the model, the optimizer or the progress");
    return 0;
  }
  const std::string_view section = fuzz::data_section(data, size);
  for (const nn::Parameter* p : fixture.model.network().parameters())
    if (!fuzz::in_section(section, p->value))
      fuzz::finding("a loaded parameter's values are not a range of the data section");
  for (const auto& [slot, buffers] : fixture.model.optimizer().state().slots)
    for (const std::vector<float>& buffer : buffers)
      if (!fuzz::in_section(section, buffer))
        fuzz::finding("a loaded optimizer slot's values are not a range of the data section");
  const int epoch = fixture.model.progress().epoch;
  if (epoch < 0) fuzz::finding("a loaded checkpoint's epoch is negative");
  // One more epoch (a fit without the saved generator replays the shuffles of every epoch before,
  // so only for small epochs); or, from any epoch, none: fit must return at once.
  const bool one_more = epoch < 64;
  try {
    const nn::History history =
        fixture.model.fit(fixture.data, epochs(epoch, one_more ? epoch + 1 : epoch));
    if (!one_more && !history.epochs.empty()) fuzz::finding("fit trained an epoch with none left");
  } catch (const std::invalid_argument&) {  // e.g. an order of other rows than these
  }
  fixture.restore();
  return 0;
}
