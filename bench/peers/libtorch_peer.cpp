// The side-by-side peer for #9's speed targets: libtorch 1.13 (Debian's libtorch-dev) on the
// same IDX files with the same recipes: Keras's MNIST convnet (Conv2D 32 → pool → Conv2D 64 →
// pool → Flatten → Dropout 0.5 → Dense 10, batch 128) or the tutorial's MLP (784 → 128 → 10,
// batch 32); Adam (eps 1e-7 as Keras), the last 10% held out for validation. Prints the seconds of
// each epoch (training and validation) and the test accuracy. Not part of the build (libtorch is
// a 1 GB install); by hand:
//
//   apt-get install libtorch-dev
//   g++ -O2 -std=c++17 bench/peers/libtorch_peer.cpp -I/usr/include/torch/csrc/api/include \
//       -ltorch -ltorch_cpu -lc10 -lz -o libtorch_peer
//   OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=2 ./libtorch_peer /usr/share/datasets/fashion-mnist cnn
//   2 2
//
// (arguments: data directory, cnn or mlp, epochs, threads, and optionally the seed: 1 by default).
// Its best setting here is OpenBLAS on
// one thread and libtorch's own two: OpenBLAS's threads made it 1.8× (convnet) to 2.5× (MLP)
// slower.
#include <torch/torch.h>
#include <zlib.h>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>
std::vector<uint8_t> read_gz(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw std::runtime_error(path + ": cannot open");
  std::vector<uint8_t> out;
  uint8_t buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) out.insert(out.end(), buf, buf + n);
  if (n < 0 || out.size() < 16) throw std::runtime_error(path + ": unreadable or truncated");
  gzclose(f);
  return out;
}
struct Data {
  torch::Tensor x, y;
};
Data load(const std::string& dir, const std::string& prefix, bool images4d) {
  auto img = read_gz(dir + "/" + prefix + "-images-idx3-ubyte.gz");
  auto lab = read_gz(dir + "/" + prefix + "-labels-idx1-ubyte.gz");
  int64_t n = lab.size() - 8;
  auto x =
      torch::from_blob(img.data() + 16, {n, 28, 28}, torch::kUInt8).to(torch::kFloat32).div(255.0);
  auto y = torch::from_blob(lab.data() + 8, {n}, torch::kUInt8).to(torch::kInt64);
  x = images4d ? x.reshape({n, 1, 28, 28}) : x.reshape({n, 784});
  return {x.clone(), y.clone()};
}
int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: libtorch_peer DATA_DIR cnn|mlp EPOCHS THREADS [SEED]\n");
    return 2;
  }
  std::string dir = argv[1], model = argv[2];
  int epochs = std::stoi(argv[3]);
  int threads = std::stoi(argv[4]);
  torch::set_num_threads(threads);
  torch::manual_seed(argc > 5 ? std::stoull(argv[5]) : 1);
  bool cnn = model == "cnn";
  int64_t batch = cnn ? 128 : 32;
  Data train = load(dir, "train", cnn), test = load(dir, "t10k", cnn);
  int64_t n = train.x.size(0), split = n - n / 10;
  auto tx = train.x.slice(0, 0, split), ty = train.y.slice(0, 0, split);
  auto vx = train.x.slice(0, split), vy = train.y.slice(0, split);
  torch::nn::Sequential net;
  if (cnn) {
    net = torch::nn::Sequential(torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 32, 3)),
                                torch::nn::ReLU(), torch::nn::MaxPool2d(2),
                                torch::nn::Conv2d(torch::nn::Conv2dOptions(32, 64, 3)),
                                torch::nn::ReLU(), torch::nn::MaxPool2d(2), torch::nn::Flatten(),
                                torch::nn::Dropout(0.5), torch::nn::Linear(1600, 10));
  } else {
    net = torch::nn::Sequential(torch::nn::Linear(784, 128), torch::nn::ReLU(),
                                torch::nn::Linear(128, 10));
  }
  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(1e-3).eps(1e-7));
  auto accuracy = [&](torch::Tensor x, torch::Tensor y) {
    torch::NoGradGuard ng;
    net->eval();
    int64_t correct = 0;
    for (int64_t i = 0; i < x.size(0); i += batch) {
      auto out = net->forward(x.slice(0, i, std::min(i + batch, x.size(0))));
      correct +=
          out.argmax(1).eq(y.slice(0, i, std::min(i + batch, x.size(0)))).sum().item<int64_t>();
    }
    net->train();
    return double(correct) / x.size(0);
  };
  for (int e = 0; e < epochs; ++e) {
    auto t0 = std::chrono::steady_clock::now();
    auto perm = torch::randperm(split);
    for (int64_t i = 0; i < split; i += batch) {
      auto idx = perm.slice(0, i, std::min(i + batch, split));
      auto xb = tx.index_select(0, idx), yb = ty.index_select(0, idx);
      opt.zero_grad();
      auto loss = torch::nn::functional::cross_entropy(net->forward(xb), yb);
      loss.backward();
      opt.step();
    }
    double val = accuracy(vx, vy);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("epoch %d: %.3f s, val_accuracy %.4f\n", e + 1, s, val);
    std::fflush(stdout);
  }
  std::printf("Test accuracy: %.4f\n", accuracy(test.x, test.y));
}
