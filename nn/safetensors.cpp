#include "nn/safetensors.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "nn/atomic_file.hpp"
#include "nn/data.hpp"  // DataError

namespace nn {

const char* to_string(Dtype dtype) {
  switch (dtype) {
    case Dtype::F32:
      return "F32";
    case Dtype::F64:
      return "F64";
    case Dtype::I64:
      return "I64";
  }
  return "?";
}

std::size_t element_bytes(Dtype dtype) { return dtype == Dtype::F32 ? 4 : 8; }

namespace {

// The file is little-endian; so is every machine this builds on so far, but not by assumption.
void to_little_endian(unsigned char* bytes, std::size_t count, std::size_t width) {
  if constexpr (std::endian::native == std::endian::big)
    for (std::size_t i = 0; i < count; ++i)
      std::reverse(bytes + i * width, bytes + (i + 1) * width);
}

std::string shape_text(const std::vector<std::int64_t>& dims) {
  return fmt::format("({})", fmt::join(dims, ", "));
}

// The element count of `shape`, or -1 if it (or its byte size) overflows.
std::int64_t checked_count(const std::vector<std::int64_t>& shape, std::size_t width) {
  std::int64_t count = 1;
  for (std::int64_t d : shape) {
    if (d < 0) return -1;
    if (d == 0) return 0;
  }
  for (std::int64_t d : shape) {
    if (count > INT64_MAX / static_cast<std::int64_t>(width) / d) return -1;
    count *= d;
  }
  return count;
}

[[noreturn]] void fail(const std::string& source, const std::string& what) {
  throw DataError(fmt::format("{}: {}", source, what));
}

struct Range {
  std::string name;
  std::uint64_t begin, end;
};

StoredTensor parse_entry(const std::string& source, const std::string& name,
                         const nlohmann::ordered_json& value, std::uint64_t data_bytes,
                         Range& range) {
  const std::string tensor = fmt::format("tensor \"{}\"", name);
  if (!value.is_object()) fail(source, tensor + ": not a JSON object");
  for (const auto& [key, field] : value.items())
    if (key != "dtype" && key != "shape" && key != "data_offsets")
      fail(source, fmt::format("{}: unknown field \"{}\"", tensor, key));
  StoredTensor t;
  t.name = name;
  const auto dtype = value.find("dtype");
  if (dtype == value.end() || !dtype->is_string()) fail(source, tensor + ": no dtype string");
  const auto& dtype_name = dtype->get_ref<const std::string&>();
  if (dtype_name == "F32")
    t.dtype = Dtype::F32;
  else if (dtype_name == "F64")
    t.dtype = Dtype::F64;
  else if (dtype_name == "I64")
    t.dtype = Dtype::I64;
  else
    fail(source,
         fmt::format("{}: dtype \"{}\" is not supported (F32, F64 or I64)", tensor, dtype_name));
  const auto shape = value.find("shape");
  if (shape == value.end() || !shape->is_array()) fail(source, tensor + ": no shape array");
  for (const nlohmann::ordered_json& d : *shape) {
    if (!d.is_number_unsigned() || d.get<std::uint64_t>() > std::uint64_t(INT64_MAX))
      fail(source, fmt::format("{}: shape {} is not a list of non-negative integers", tensor,
                               shape->dump()));
    t.shape.push_back(static_cast<std::int64_t>(d.get<std::uint64_t>()));
  }
  const std::size_t width = element_bytes(t.dtype);
  const std::int64_t count = checked_count(t.shape, width);
  if (count < 0)
    fail(source, fmt::format("{}: shape {} has too many elements", tensor, shape->dump()));
  const auto offsets = value.find("data_offsets");
  if (offsets == value.end() || !offsets->is_array() || offsets->size() != 2 ||
      !(*offsets)[0].is_number_unsigned() || !(*offsets)[1].is_number_unsigned())
    fail(source, tensor + ": data_offsets is not a pair [begin, end] of non-negative integers");
  range = {name, (*offsets)[0].get<std::uint64_t>(), (*offsets)[1].get<std::uint64_t>()};
  if (range.end < range.begin || range.end > data_bytes)
    fail(source, fmt::format("{}: data_offsets [{}, {}] outside the data section of {} bytes",
                             tensor, range.begin, range.end, data_bytes));
  const std::uint64_t needed = static_cast<std::uint64_t>(count) * width;
  if (range.end - range.begin != needed)
    fail(source, fmt::format("{}: data_offsets [{}, {}] span {} bytes, but shape {} of {} needs {}",
                             tensor, range.begin, range.end, range.end - range.begin,
                             shape_text(t.shape), dtype_name, needed));
  return t;
}

}  // namespace

std::int64_t StoredTensor::element_count() const {
  return static_cast<std::int64_t>(bytes.size() / element_bytes(dtype));
}

template <class T>
std::vector<T> StoredTensor::values() const {
  if (dtype != dtype_of<T>())
    throw DataError(fmt::format("tensor \"{}\" holds {}, expected {}", name, to_string(dtype),
                                to_string(dtype_of<T>())));
  std::vector<T> out(bytes.size() / sizeof(T));
  if (!out.empty()) std::memcpy(out.data(), bytes.data(), bytes.size());
  to_little_endian(reinterpret_cast<unsigned char*>(out.data()), out.size(), sizeof(T));
  return out;
}

template <class T>
void TensorFile::add(std::string name, const std::vector<T>& values,
                     std::vector<std::int64_t> shape) {
  if (name == "__metadata__" || find(name))
    throw std::invalid_argument(fmt::format("TensorFile::add: the name \"{}\" is taken", name));
  const std::int64_t count = checked_count(shape, sizeof(T));
  if (count < 0 || static_cast<std::uint64_t>(count) != values.size())
    throw std::invalid_argument(fmt::format("TensorFile::add: \"{}\" has {} values for shape {}",
                                            name, values.size(), shape_text(shape)));
  StoredTensor t{std::move(name), dtype_of<T>(), std::move(shape), {}};
  t.bytes.resize(values.size() * sizeof(T));
  if (!values.empty()) std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  to_little_endian(t.bytes.data(), values.size(), sizeof(T));
  tensors.push_back(std::move(t));
}

template std::vector<float> StoredTensor::values<float>() const;
template std::vector<double> StoredTensor::values<double>() const;
template std::vector<std::int64_t> StoredTensor::values<std::int64_t>() const;
template void TensorFile::add<float>(std::string, const std::vector<float>&,
                                     std::vector<std::int64_t>);
template void TensorFile::add<double>(std::string, const std::vector<double>&,
                                      std::vector<std::int64_t>);
template void TensorFile::add<std::int64_t>(std::string, const std::vector<std::int64_t>&,
                                            std::vector<std::int64_t>);

const StoredTensor* TensorFile::find(std::string_view name) const {
  for (const StoredTensor& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

const StoredTensor& TensorFile::at(std::string_view name) const {
  if (const StoredTensor* t = find(name)) return *t;
  fail(source, fmt::format("no tensor \"{}\"", name));
}

const std::string* TensorFile::find_metadata(std::string_view key) const {
  for (const auto& [k, v] : metadata)
    if (k == key) return &v;
  return nullptr;
}

const std::string& TensorFile::metadata_at(std::string_view key) const {
  if (const std::string* v = find_metadata(key)) return *v;
  fail(source, fmt::format("no \"{}\" in the header's __metadata__", key));
}

std::string encode_safetensors(const TensorFile& file) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!file.metadata.empty()) {
    nlohmann::ordered_json metadata = nlohmann::ordered_json::object();
    for (const auto& [key, value] : file.metadata) metadata[key] = value;
    header["__metadata__"] = std::move(metadata);
  }
  std::uint64_t offset = 0;
  for (const StoredTensor& t : file.tensors) {
    header[t.name] = {{"dtype", to_string(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');
  std::string bytes;
  bytes.reserve(8 + json.size() + offset);
  const std::uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  bytes += json;
  for (const StoredTensor& t : file.tensors)
    bytes.append(reinterpret_cast<const char*>(t.bytes.data()), t.bytes.size());
  return bytes;
}

void write_safetensors(const std::string& path, const TensorFile& file, std::string_view what) {
  write_file_atomically(path, encode_safetensors(file), what);
}

std::size_t json_nesting(std::string_view text, std::size_t limit) {
  std::size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
      if (deepest > limit) return deepest;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

TensorFile parse_safetensors(std::string_view bytes, std::string source) {
  if (bytes.size() < 8)
    fail(source, fmt::format("not a safetensors file: {} bytes, less than the 8-byte header length",
                             bytes.size()));
  std::uint64_t header_bytes = 0;
  for (int i = 7; i >= 0; --i)
    header_bytes = (header_bytes << 8) | static_cast<unsigned char>(bytes[std::size_t(i)]);
  // A file of another kind reads as a huge length: say what it is not, rather than the length.
  if ((header_bytes > kSafetensorsMaxHeaderBytes || header_bytes > bytes.size() - 8) &&
      bytes.size() > 8 && bytes[8] != '{')
    fail(source, fmt::format("not a safetensors file: byte 8 is 0x{:02x}, not the '{{' that begins "
                             "its header (bytes 0-7, read as the header's length, give {})",
                             static_cast<unsigned char>(bytes[8]), header_bytes));
  if (header_bytes > kSafetensorsMaxHeaderBytes)
    fail(source, fmt::format("header length {} is more than the limit of {} bytes", header_bytes,
                             kSafetensorsMaxHeaderBytes));
  if (header_bytes > bytes.size() - 8)
    fail(source, fmt::format("header length {} is more than the {} bytes after it", header_bytes,
                             bytes.size() - 8));
  const std::string_view text = bytes.substr(8, header_bytes);
  const std::string_view data = bytes.substr(8 + header_bytes);
  // Before parsing: messages quote parts of the header with dump(), which recurses per level.
  if (json_nesting(text, kSafetensorsMaxNesting) > kSafetensorsMaxNesting)
    fail(source, fmt::format("the header nests arrays or objects more than {} deep",
                             kSafetensorsMaxNesting));

  // Duplicate names would silently replace each other in the parsed object: caught as parsed.
  std::set<std::string> seen;
  std::string duplicate;
  // Ordered: the metadata keeps its order.
  using Json = nlohmann::ordered_json;
  const Json::parser_callback_t on_event = [&](int depth, Json::parse_event_t event, Json& parsed) {
    if (depth == 1 && event == Json::parse_event_t::key && parsed.is_string() &&
        !seen.insert(parsed.get<std::string>()).second && duplicate.empty())
      duplicate = parsed.get<std::string>();
    return true;
  };
  const Json header = Json::parse(text, on_event, /*allow_exceptions=*/false);
  if (header.is_discarded()) fail(source, "the header is not valid JSON");
  if (!header.is_object()) fail(source, "the header is not a JSON object");
  if (!duplicate.empty())
    fail(source, fmt::format("tensor \"{}\" appears twice in the header", duplicate));

  TensorFile file;
  file.source = source;
  std::vector<Range> ranges;
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      if (!value.is_object()) fail(source, "__metadata__ is not a JSON object");
      for (const auto& [key, v] : value.items()) {
        if (!v.is_string()) fail(source, fmt::format("__metadata__ \"{}\" is not a string", key));
        file.metadata.emplace_back(key, v.get<std::string>());
      }
      continue;
    }
    Range range;
    file.tensors.push_back(parse_entry(source, name, value, data.size(), range));
    ranges.push_back(std::move(range));
  }
  // The byte ranges, in order, cover the data section exactly.
  std::vector<std::size_t> order(ranges.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return ranges[a].begin != ranges[b].begin ? ranges[a].begin < ranges[b].begin
                                              : ranges[a].end < ranges[b].end;
  });
  std::uint64_t covered = 0;
  for (std::size_t i : order) {
    const Range& r = ranges[i];
    if (r.begin != covered)
      fail(source,
           fmt::format("tensor \"{}\" starts at byte {} of the data section, not at {}: {}", r.name,
                       r.begin, covered, r.begin > covered ? "a gap" : "an overlap"));
    covered = r.end;
  }
  if (covered != data.size())
    fail(source,
         fmt::format("the tensors cover {} bytes of a data section of {}", covered, data.size()));
  std::vector<StoredTensor> in_file_order;
  in_file_order.reserve(order.size());
  for (std::size_t i : order) {
    StoredTensor& t = file.tensors[i];
    const unsigned char* begin =
        reinterpret_cast<const unsigned char*>(data.data()) + ranges[i].begin;
    t.bytes.assign(begin, begin + (ranges[i].end - ranges[i].begin));
    in_file_order.push_back(std::move(t));
  }
  file.tensors = std::move(in_file_order);
  return file;
}

TensorFile read_safetensors(const std::string& path) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) fail(path, "not a regular file");
  const std::uintmax_t size = std::filesystem::file_size(path, error);
  if (error) fail(path, "cannot read its size: " + error.message());
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open it");
  // Read what is there, in pieces: the size may change under us, and is not trusted.
  std::string bytes;
  bytes.reserve(static_cast<std::size_t>(std::min<std::uintmax_t>(size, 1u << 30)));
  char buffer[1 << 16];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0)
    bytes.append(buffer, static_cast<std::size_t>(in.gcount()));
  if (in.bad()) fail(path, "read error");
  return parse_safetensors(bytes, path);
}

}  // namespace nn
