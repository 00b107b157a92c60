#include "nn/serialize.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "nn/atomic_file.hpp"
#include "nn/data.hpp"  // DataError

namespace nn {
namespace {

constexpr std::uint64_t kFloatBytes = 4;

void put_u32_le(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::uint64_t get_u64_le(const unsigned char* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

float get_f32_le(const unsigned char* p) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return std::bit_cast<float>(v);
}

std::string shape_text(const std::vector<std::uint64_t>& dims) {
  return fmt::format("({})", fmt::join(dims, ", "));
}

std::vector<std::uint64_t> dims_of(const Shape& shape) {
  std::vector<std::uint64_t> dims;
  for (std::int64_t d : shape.dims()) dims.push_back(static_cast<std::uint64_t>(d));
  return dims;
}

struct Entry {
  std::string name;
  std::vector<std::uint64_t> shape;
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
};

class Reader {
 public:
  explicit Reader(const std::string& path) : path_(path) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw DataError(fmt::format("{}: {}", path_, what));
  }

  Entry entry(const std::string& name, const nlohmann::json& value,
              std::uint64_t data_bytes) const {
    const std::string tensor = fmt::format("tensor \"{}\"", name);
    if (!value.is_object()) fail(fmt::format("{}: not a JSON object", tensor));
    for (const auto& [key, field] : value.items()) {
      if (key != "dtype" && key != "shape" && key != "data_offsets")
        fail(fmt::format("{}: unknown field \"{}\"", tensor, key));
    }
    const auto dtype = value.find("dtype");
    if (dtype == value.end() || !dtype->is_string()) fail(tensor + ": no dtype string");
    if (dtype->get_ref<const std::string&>() != "F32")
      fail(fmt::format("{}: dtype \"{}\" is not supported (only F32)", tensor,
                       dtype->get_ref<const std::string&>()));
    Entry e;
    e.name = name;
    const auto shape = value.find("shape");
    if (shape == value.end() || !shape->is_array()) fail(tensor + ": no shape array");
    std::uint64_t count = 1;
    bool overflow = false;
    for (const nlohmann::json& d : *shape) {
      if (!d.is_number_unsigned())
        fail(fmt::format("{}: shape {} is not a list of non-negative integers", tensor,
                         shape->dump()));
      const auto n = d.get<std::uint64_t>();
      e.shape.push_back(n);
      if (n != 0 && count > UINT64_MAX / kFloatBytes / n)
        overflow = true;
      else
        count *= n;
    }
    if (std::find(e.shape.begin(), e.shape.end(), std::uint64_t{0}) != e.shape.end()) {
      count = 0;
      overflow = false;
    }
    if (overflow) fail(fmt::format("{}: shape {} has too many elements", tensor, shape->dump()));
    const auto offsets = value.find("data_offsets");
    if (offsets == value.end() || !offsets->is_array() || offsets->size() != 2 ||
        !(*offsets)[0].is_number_unsigned() || !(*offsets)[1].is_number_unsigned())
      fail(tensor + ": data_offsets is not a pair [begin, end] of non-negative integers");
    e.begin = (*offsets)[0].get<std::uint64_t>();
    e.end = (*offsets)[1].get<std::uint64_t>();
    if (e.end < e.begin || e.end > data_bytes)
      fail(fmt::format("{}: data_offsets [{}, {}] outside the data section of {} bytes", tensor,
                       e.begin, e.end, data_bytes));
    if (e.end - e.begin != count * kFloatBytes)
      fail(fmt::format("{}: data_offsets [{}, {}] span {} bytes, but shape {} of F32 needs {}",
                       tensor, e.begin, e.end, e.end - e.begin, shape_text(e.shape),
                       count * kFloatBytes));
    return e;
  }

 private:
  std::string path_;
};

}  // namespace

void save_weights(Module& model, const std::string& path) {
  const std::vector<NamedParameter> params = model.named_parameters();
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  header["__metadata__"] = {{"format", "autodiff"}, {"format_version", "1"}};
  std::uint64_t offset = 0;
  for (const NamedParameter& p : params) {
    const std::uint64_t bytes = p.parameter->value.size() * kFloatBytes;
    header[p.name] = {{"dtype", "F32"},
                      {"shape", dims_of(p.parameter->shape)},
                      {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');
  std::string bytes;
  bytes.reserve(8 + json.size() + offset);
  const std::uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  bytes += json;
  for (const NamedParameter& p : params)
    for (float v : p.parameter->value) put_u32_le(bytes, std::bit_cast<std::uint32_t>(v));
  write_file_atomically(path, bytes, "the weights");
}

void load_weights(Module& model, const std::string& path) {
  const Reader reader(path);
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) reader.fail("not a regular file");
  const std::uint64_t file_bytes = std::filesystem::file_size(path, error);
  if (error) reader.fail("cannot read its size: " + error.message());
  std::ifstream in(path, std::ios::binary);
  if (!in) reader.fail("cannot open it");
  if (file_bytes < 8)
    reader.fail(fmt::format("not a safetensors file: {} bytes, less than the 8-byte header length",
                            file_bytes));
  unsigned char length_bytes[8];
  if (!in.read(reinterpret_cast<char*>(length_bytes), 8))
    reader.fail("cannot read the header length");
  const std::uint64_t header_bytes = get_u64_le(length_bytes);
  if (header_bytes > kSafetensorsMaxHeaderBytes)
    reader.fail(fmt::format("header length {} is more than the limit of {} bytes", header_bytes,
                            kSafetensorsMaxHeaderBytes));
  if (header_bytes > file_bytes - 8)
    reader.fail(fmt::format("header length {} is more than the {} bytes after it", header_bytes,
                            file_bytes - 8));
  std::string text(header_bytes, '\0');
  if (!in.read(text.data(), static_cast<std::streamsize>(header_bytes)))
    reader.fail("cannot read the header (the file is shorter than it was)");
  const std::uint64_t data_bytes = file_bytes - 8 - header_bytes;

  // Duplicate names would silently replace each other in the parsed object: caught as parsed.
  std::set<std::string> seen;
  std::string duplicate;
  const nlohmann::json::parser_callback_t on_event =
      [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
        if (depth == 1 && event == nlohmann::json::parse_event_t::key && parsed.is_string() &&
            !seen.insert(parsed.get<std::string>()).second && duplicate.empty())
          duplicate = parsed.get<std::string>();
        return true;
      };
  const nlohmann::json header = nlohmann::json::parse(text, on_event, /*allow_exceptions=*/false);
  if (header.is_discarded()) reader.fail("the header is not valid JSON");
  if (!header.is_object()) reader.fail("the header is not a JSON object");
  if (!duplicate.empty())
    reader.fail(fmt::format("tensor \"{}\" appears twice in the header", duplicate));

  std::vector<Entry> entries;
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      if (!value.is_object()) reader.fail("__metadata__ is not a JSON object");
      for (const auto& [key, v] : value.items())
        if (!v.is_string()) reader.fail(fmt::format("__metadata__ \"{}\" is not a string", key));
      continue;
    }
    entries.push_back(reader.entry(name, value, data_bytes));
  }
  // The byte ranges, in order, cover the data section exactly.
  std::vector<const Entry*> by_offset;
  for (const Entry& e : entries) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  std::uint64_t covered = 0;
  for (const Entry* e : by_offset) {
    if (e->begin != covered)
      reader.fail(fmt::format("tensor \"{}\" starts at byte {} of the data section, not at {}: {}",
                              e->name, e->begin, covered,
                              e->begin > covered ? "a gap" : "an overlap"));
    covered = e->end;
  }
  if (covered != data_bytes)
    reader.fail(
        fmt::format("the tensors cover {} bytes of a data section of {}", covered, data_bytes));

  // Names and shapes against the model: every difference, in one message.
  const std::vector<NamedParameter> params = model.named_parameters();
  std::map<std::string, const Entry*> by_name;
  for (const Entry& e : entries) by_name.emplace(e.name, &e);
  std::vector<std::string> problems;
  std::set<std::string> wanted;
  for (const NamedParameter& p : params) {
    wanted.insert(p.name);
    const auto found = by_name.find(p.name);
    if (found == by_name.end()) {
      problems.push_back(fmt::format("missing tensor \"{}\"", p.name));
    } else if (found->second->shape != dims_of(p.parameter->shape)) {
      problems.push_back(fmt::format("tensor \"{}\" has shape {}, the model's is {}", p.name,
                                     shape_text(found->second->shape),
                                     shape_text(dims_of(p.parameter->shape))));
    }
  }
  for (const Entry* e : by_offset)  // in the file's order
    if (!wanted.contains(e->name))
      problems.push_back(
          fmt::format("extra tensor \"{}\" (not a parameter of the model)", e->name));
  if (!problems.empty())
    reader.fail(fmt::format("the weights do not fit the model: {}", fmt::join(problems, "; ")));

  // All checked: the data section is exactly the model's parameters. Read it into buffers, then
  // copy: a read failure leaves the model as it was.
  std::vector<unsigned char> data(data_bytes);
  if (data_bytes > 0 &&
      !in.read(reinterpret_cast<char*>(data.data()), static_cast<std::streamsize>(data_bytes)))
    reader.fail("cannot read the data section (the file is shorter than it was)");
  std::vector<std::vector<float>> values;
  values.reserve(params.size());
  for (const NamedParameter& p : params) {
    const Entry& e = *by_name.at(p.name);
    std::vector<float> v(p.parameter->value.size());
    for (std::size_t i = 0; i < v.size(); ++i)
      v[i] = get_f32_le(data.data() + e.begin + kFloatBytes * i);
    values.push_back(std::move(v));
  }
  // Copied, not assigned: a parameter's storage never moves (tapes and optimizers point into it).
  for (std::size_t i = 0; i < params.size(); ++i)
    std::copy(values[i].begin(), values[i].end(), params[i].parameter->value.begin());
}

}  // namespace nn
