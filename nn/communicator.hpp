#pragma once
// What a Model needs from the other processes of a data-parallel run: who it is, a broadcast from
// rank 0, sums over all ranks (blocking, and started while the backward pass goes on), and a way
// to bring the whole job down. fit, evaluate and train_step consult one when Model::distribute
// was given one; without one they run exactly as a single process.
//
// nn/distributed.hpp implements it over MPI (when built with -DAUTODIFF_MPI=ON); a test may
// implement it in memory.

#include <cstddef>
#include <cstdlib>
#include <span>
#include <string>

namespace nn {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  /// The number of ranks, ≥ 1.
  virtual int size() const = 0;

  /// Rank 0's bytes, copied into `bytes` on every rank (blocking; the same size everywhere).
  virtual void broadcast(std::span<std::byte> bytes) = 0;
  /// Every rank's `values` summed element by element, on every rank, in place (blocking).
  virtual void sum(std::span<double> values) = 0;

  /// Starts summing `values` over all ranks, in place, without waiting: the buffer must stay as
  /// it is until wait_all(). Every rank starts the same sums, of the same sizes, in the same order.
  virtual void start_sum(std::span<float> values) = 0;
  /// Lets started sums advance (MPI moves them on only inside its own calls); never blocks.
  virtual void progress() {}
  /// Waits until every started sum is done.
  virtual void wait_all() = 0;

  /// Ends every process of the job now, `message` printed on stderr by this one, naming its rank.
  [[noreturn]] void abort(const std::string& message) {
    end_job(message);
    std::abort();  // end_job does not return; if it did, this process still must not go on
  }

 protected:
  /// abort()'s work: must not return.
  virtual void end_job(const std::string& message) = 0;
};

}  // namespace nn
