// A History as an SVG chart: written by hand, element by element (SVG is plain XML).
#include "nn/plot.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

#include "nn/atomic_file.hpp"

namespace nn {
namespace {

constexpr const char* kTrainingColour = "#1f77b4";
constexpr const char* kValidationColour = "#ff7f0e";

std::string escape(const std::string& text) {
  std::string out;
  for (char ch : text) {
    switch (ch) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += ch;
    }
  }
  return out;
}

// 1, 2 or 5 times a power of ten, near span / count.
double nice_step(double span, int count) {
  const double raw = span / count;
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0})
    if (raw <= m * power) return m * power;
  return 10 * power;
}

std::string tick_text(double value, double step) {
  const int decimals = std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
  if (std::fabs(value) < step * 1e-6) value = 0;  // no "-0.00"
  return fmt::format("{:.{}f}", value, decimals);
}

struct Series {
  std::string name;  // the log's name: "loss", "val_loss", …
  bool validation;
  std::vector<double> values;  // one per epoch (NaN where absent)
};

// One panel: axes with ticks and labels, a curve per series, a legend.
std::string panel(const std::string& quantity, const std::vector<Series>& series,
                  const std::vector<int>& epochs, double left, const PlotOptions& o) {
  constexpr double kMarginLeft = 64, kMarginRight = 16, kMarginTop = 56, kMarginBottom = 52;
  const double x0 = left + kMarginLeft, x1 = left + o.panel_width - kMarginRight;
  const double y0 = o.height - kMarginBottom, y1 = kMarginTop;  // y0: the bottom of the plot

  double low = std::numeric_limits<double>::infinity(), high = -low;
  for (const Series& s : series)
    for (double v : s.values)
      if (std::isfinite(v)) {
        low = std::min(low, v);
        high = std::max(high, v);
      }
  if (!std::isfinite(low)) low = 0, high = 1;  // nothing finite to show
  if (high - low < 1e-12 * std::max(1.0, std::fabs(high))) {
    const double pad = std::fabs(high) > 0 ? std::fabs(high) * 0.1 : 1.0;
    low -= pad;
    high += pad;
  }
  const double y_step = nice_step(high - low, 5);
  low = std::floor(low / y_step) * y_step;
  high = std::ceil(high / y_step) * y_step;
  const int first = epochs.empty() ? 1 : epochs.front();
  const int last = epochs.empty() ? 1 : std::max(epochs.back(), first + 1);
  const double x_step = std::max(1.0, nice_step(double(last - first), 6));
  auto x_of = [&](double epoch) { return x0 + (epoch - first) / double(last - first) * (x1 - x0); };
  auto y_of = [&](double v) { return y0 - (v - low) / (high - low) * (y0 - y1); };

  std::string svg = fmt::format("<g class=\"panel\" data-quantity=\"{}\">\n", escape(quantity));
  svg += fmt::format(
      "<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" font-size=\"15\" "
      "font-weight=\"bold\">{}</text>\n",
      (x0 + x1) / 2, kMarginTop - 30, escape(quantity));
  // Grid and ticks.
  for (double v = low; v <= high + y_step * 1e-6; v += y_step) {
    const double y = y_of(v);
    svg += fmt::format(
        "<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{2:.1f}\" y2=\"{1:.1f}\" stroke=\"#e5e5e5\"/>\n"
        "<text x=\"{3:.1f}\" y=\"{4:.1f}\" text-anchor=\"end\" font-size=\"11\">{5}</text>\n",
        x0, y, x1, x0 - 6, y + 4, tick_text(v, y_step));
  }
  for (double e = first; e <= last + 1e-9; e += x_step) {
    const double x = x_of(e);
    svg += fmt::format(
        "<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{0:.1f}\" y2=\"{2:.1f}\" stroke=\"#e5e5e5\"/>\n"
        "<text x=\"{0:.1f}\" y=\"{3:.1f}\" text-anchor=\"middle\" font-size=\"11\">{4}</text>\n",
        x, y0, y1, y0 + 16, tick_text(e, 1.0));
  }
  // Axes and their labels.
  svg += fmt::format(
      "<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{2:.1f}\" y2=\"{1:.1f}\" stroke=\"#333\"/>\n"
      "<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{0:.1f}\" y2=\"{3:.1f}\" stroke=\"#333\"/>\n"
      "<text class=\"axis-label\" x=\"{4:.1f}\" y=\"{5:.1f}\" text-anchor=\"middle\" "
      "font-size=\"12\">epoch</text>\n"
      "<text class=\"axis-label\" x=\"{6:.1f}\" y=\"{7:.1f}\" text-anchor=\"middle\" "
      "font-size=\"12\" transform=\"rotate(-90 {6:.1f} {7:.1f})\">{8}</text>\n",
      x0, y0, x1, y1, (x0 + x1) / 2, y0 + 38, left + 16, (y0 + y1) / 2, escape(quantity));
  // The curves: a polyline per run of finite values, a dot per epoch.
  for (const Series& s : series) {
    const char* colour = s.validation ? kValidationColour : kTrainingColour;
    const char* dash = s.validation ? " stroke-dasharray=\"6 4\"" : "";
    std::string points, dots;
    auto flush = [&] {
      if (!points.empty())
        svg += fmt::format(
            "<polyline data-series=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{} "
            "points=\"{}\"/>\n",
            escape(s.name), colour, dash, points);
      points.clear();
    };
    for (std::size_t i = 0; i < s.values.size(); ++i) {
      if (!std::isfinite(s.values[i])) {
        flush();
        continue;
      }
      const double x = x_of(epochs[i]), y = y_of(s.values[i]);
      points += fmt::format("{}{:.1f},{:.1f}", points.empty() ? "" : " ", x, y);
      dots += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"2.5\" fill=\"{}\"/>\n", x, y,
                          colour);
    }
    flush();
    svg += dots;
  }
  // The legend, top right.
  double legend_y = y1 + 14;
  for (const Series& s : series) {
    const char* colour = s.validation ? kValidationColour : kTrainingColour;
    const char* dash = s.validation ? " stroke-dasharray=\"6 4\"" : "";
    svg += fmt::format(
        "<g class=\"legend\"><line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{2:.1f}\" y2=\"{1:.1f}\" "
        "stroke=\"{3}\" stroke-width=\"2\"{4}/><text x=\"{5:.1f}\" y=\"{6:.1f}\" "
        "font-size=\"11\">{7}</text></g>\n",
        x1 - 120, legend_y, x1 - 96, colour, dash, x1 - 90, legend_y + 4,
        s.validation ? "validation" : "training");
    legend_y += 16;
  }
  return svg + "</g>\n";
}

}  // namespace

std::string history_svg(const History& history, const PlotOptions& options) {
  if (options.panel_width < 200 || options.height < 200 || options.panel_width > 10000 ||
      options.height > 10000)
    throw std::invalid_argument(fmt::format(
        "history_svg: panel_width {} and height {}: expected each in [200, 10000] pixels",
        options.panel_width, options.height));
  std::vector<std::string> names;  // logged names, in order
  if (!history.epochs.empty())
    for (const auto& [name, _] : history.epochs.front().values()) names.push_back(name);
  auto logged = [&](const std::string& name) {
    return std::find(names.begin(), names.end(), name) != names.end();
  };
  std::string metric = options.metric;
  if (metric.empty()) {
    for (const std::string& name : names)
      if (name != "loss" && name.rfind("val_", 0) != 0) {
        metric = name;
        break;
      }
  } else if (!history.epochs.empty() && !logged(metric)) {
    std::string known;
    for (const std::string& name : names) known += (known.empty() ? "" : ", ") + name;
    throw std::invalid_argument(fmt::format(
        "history_svg: the metric \"{}\" is not in the history, which logs: {}", metric, known));
  }

  std::vector<int> epochs;
  for (const EpochLog& e : history.epochs) epochs.push_back(e.epoch);
  auto series_of = [&](const std::string& quantity) {
    std::vector<Series> series;
    for (const std::string& name : {quantity, "val_" + quantity}) {
      if (!logged(name)) continue;
      Series s{name, name != quantity, {}};
      for (const EpochLog& e : history.epochs) s.values.push_back(e[name]);
      series.push_back(std::move(s));
    }
    return series;
  };

  const int panels = metric.empty() ? 1 : 2;
  const int width = panels * options.panel_width;
  std::string svg = fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} "
      "{1}\" font-family=\"Helvetica, Arial, sans-serif\">\n"
      "<title>{2}</title>\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{3}\" y=\"18\" text-anchor=\"middle\" font-size=\"13\" "
      "fill=\"#555\">{2}{4}</text>\n",
      width, options.height, escape(options.title), width / 2,
      history.epochs.empty() ? " (no epochs to plot)"
                             : fmt::format(" ({} epoch{})", history.epochs.size(),
                                           history.epochs.size() == 1 ? "" : "s"));
  svg += panel("loss", series_of("loss"), epochs, 0, options);
  if (!metric.empty())
    svg += panel(metric, series_of(metric), epochs, options.panel_width, options);
  return svg + "</svg>\n";
}

void write_history_svg(const History& history, const std::string& path,
                       const PlotOptions& options) {
  write_file_atomically(path, history_svg(history, options), "the training plot");
}

}  // namespace nn
