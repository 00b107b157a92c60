#pragma once
// One program on several processes, over MPI: what data-parallel training (Model::distribute)
// needs from the job around it.
//
//   int main(int argc, char** argv) {
//     nn::distributed::Environment processes(argc, argv);  // MPI under mpirun, else one process
//     …
//     model.distribute(processes.communicator());          // null for one process: unchanged
//     model.fit(train, {.batch_size = 32, …});              // the global batch
//     if (processes.is_main()) nn::save_model(model.network(), "m.safetensors");
//   }
//
// `mpirun -np 4 program` runs it on four processes; `program` alone runs it as before, without
// starting MPI at all. Built with MPI when CMake finds it (-DAUTODIFF_MPI=ON, the default then;
// library autodiff::distributed); without it, every Environment is a single process.

#include <cstdlib>
#include <memory>

#include "nn/communicator.hpp"

namespace nn::distributed {

/// Whether this library was built with MPI.
bool available();
/// Whether a launcher (mpirun, or a PMI/PMIx one such as srun) started this process as one of
/// several: its environment variables say so.
inline bool launched_by_mpirun() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
    if (std::getenv(name)) return true;
  return false;
}

class Environment {
 public:
  /// Starts MPI when it is built in and this process was launched by mpirun (MPI_Init, once per
  /// process; a second Environment throws std::logic_error); otherwise a single process (built
  /// without MPI but launched by mpirun, it throws std::runtime_error saying so). Under
  /// MPI, a rank that fails ends the whole job with a message naming it, never leaving the
  /// others waiting: an MPI error, an exception escaping main (std::terminate), an Environment
  /// destroyed by an exception, fail(), or an exception in Model::fit / train_step.
  Environment(int& argc, char**& argv);
  /// MPI_Finalize.
  ~Environment();
  Environment(const Environment&) = delete;
  Environment& operator=(const Environment&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  /// Rank 0 (or a single process): the one that prints and writes files.
  bool is_main() const { return rank_ == 0; }
  /// For Model::distribute: the ranks of the job, or null for a single process (fit then runs
  /// exactly as it does without MPI).
  Communicator* communicator() { return size_ > 1 ? communicator_.get() : nullptr; }

  /// Prints "program: what" on stderr (with the rank, under MPI) and, under MPI, ends every
  /// process of the job; returns in a single process (the caller then exits non-zero).
  void fail(const char* program, const char* what) noexcept;

 private:
  std::unique_ptr<Communicator> communicator_;
  int rank_ = 0;
  int size_ = 1;
  int uncaught_at_start_ = 0;
  bool started_mpi_ = false;
};

}  // namespace nn::distributed
