// A saved model at work: loads any model file written by save_model (mnist_mlp --save, or a
// checkpoint), and measures it on a dataset's test images.
//   predict --model mnist.safetensors --data data/mnist-10k
#include <cstdio>
#include <string>

#include <fmt/core.h>
#include <CLI/CLI.hpp>

#include "cli_checks.hpp"
#include "nn/data.hpp"
#include "nn/model.hpp"
#include "nn/serialize.hpp"

int main(int argc, char** argv) {
  std::string model_file;
  std::string data = AUTODIFF_DEFAULT_DATA_DIR;
  CLI::App app{"Loads a saved model and prints its accuracy on the test images"};
  app.add_option("--model", model_file, "a model file (save_model, mnist_mlp --save, a checkpoint)")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--data", data, "directory with the MNIST-format t10k IDX files")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    // The architecture comes from the file: no code here knows the network.
    nn::Model model(nn::load_model(model_file), nn::categorical_crossentropy);
    const nn::Dataset test = nn::load_mnist(data, "t10k");
    fmt::print("{}: {} parameters; {}: {} test images\n", model_file,
               model.network().parameter_count(), data, test.size());
    fmt::print("Test accuracy: {}\n", model.evaluate(test)["accuracy"]);
    cli_checks::flush_stdout();
  } catch (const std::exception& error) {
    std::fprintf(stderr, "predict: %s\n", error.what());
    return 1;
  }
}
