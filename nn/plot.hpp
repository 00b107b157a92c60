#pragma once
// Training curves as a picture: a History as a self-contained SVG chart that any browser opens,
// no plotting library needed. Two panels: the loss, and the chosen metric (accuracy for the MNIST
// recipe), each with its training and validation curves, labelled axes and a legend.
//
//   nn::History history = model.fit(train, {.epochs = 10, .validation_split = 0.1});
//   nn::write_history_svg(history, "training.svg");       // written atomically
//
// Each curve is one or more <polyline> elements with a data-series attribute ("loss",
// "val_loss", "accuracy", "val_accuracy") and one point per epoch; a NaN or infinite value breaks
// its curve rather than bending the axes.

#include <string>

#include "nn/model.hpp"

namespace nn {

struct PlotOptions {
  /// The metric of the second panel; empty: the first logged value that is neither the loss nor a
  /// validation value ("accuracy" for the MNIST recipe). No metric logged: the loss alone.
  std::string metric = "";
  std::string title = "Training";
  int panel_width = 460;  // pixels, per panel
  int height = 340;
};

/// The chart as SVG text. Throws std::invalid_argument if `options.metric` is not logged.
std::string history_svg(const History& history, const PlotOptions& options = {});

/// The same, written whole or not at all (nn::write_file_atomically); throws DataError naming the
/// path when it cannot be written.
void write_history_svg(const History& history, const std::string& path,
                       const PlotOptions& options = {});

}  // namespace nn
