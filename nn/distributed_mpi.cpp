// nn/distributed.hpp over MPI (-DAUTODIFF_MPI=ON): MPI's C interface, on a duplicate of
// MPI_COMM_WORLD so that the user's own MPI calls never match ours.
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include "nn/distributed.hpp"

namespace nn::distributed {
namespace {

// For the handlers, which get no context: this process's place in the job.
int g_rank = 0;
int g_size = 1;

[[noreturn]] void abort_job(const char* what) noexcept {
  std::fprintf(stderr, "rank %d of %d: %s\n", g_rank, g_size, what);
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::abort();  // MPI_Abort does not return; if it did, this process still must not go on
}

// MPI's errors (a peer gone, a truncated message): a message and the whole job down, rather
// than MPI's default, which may leave the other ranks waiting on a collective.
void on_mpi_error(MPI_Comm* /*comm*/, int* code, ...) {
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  MPI_Error_string(*code, text, &length);
  std::string message = "MPI error: ";
  message += text;
  abort_job(message.c_str());
}

// An exception escaping main, or any other std::terminate.
void on_terminate() noexcept {
  std::string message = "terminate called";
  if (std::exception_ptr current = std::current_exception()) {
    try {
      std::rethrow_exception(current);
    } catch (const std::exception& error) {
      message += " after an exception: ";
      message += error.what();
    } catch (...) {
      message += " after an exception of unknown type";
    }
  }
  abort_job(message.c_str());
}

// MPI counts are ints: anything larger goes in pieces.
constexpr std::size_t kMaxCount = INT_MAX;

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    MPI_Comm_dup(MPI_COMM_WORLD, &comm_);
    MPI_Errhandler handler;
    MPI_Comm_create_errhandler(&on_mpi_error, &handler);
    MPI_Comm_set_errhandler(comm_, handler);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, handler);
    MPI_Errhandler_free(&handler);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  ~MpiCommunicator() override {
    if (!requests_.empty())
      MPI_Waitall(int(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE);
    MPI_Comm_free(&comm_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void broadcast(std::span<std::byte> bytes) override {
    for (std::size_t at = 0; at < bytes.size(); at += kMaxCount)
      MPI_Bcast(bytes.data() + at, int(std::min(kMaxCount, bytes.size() - at)), MPI_BYTE, 0, comm_);
  }

  void sum(std::span<double> values) override {
    for (std::size_t at = 0; at < values.size(); at += kMaxCount)
      MPI_Allreduce(MPI_IN_PLACE, values.data() + at, int(std::min(kMaxCount, values.size() - at)),
                    MPI_DOUBLE, MPI_SUM, comm_);
  }

  void start_sum(std::span<float> values) override {
    for (std::size_t at = 0; at < values.size(); at += kMaxCount) {
      MPI_Request request;
      MPI_Iallreduce(MPI_IN_PLACE, values.data() + at, int(std::min(kMaxCount, values.size() - at)),
                     MPI_FLOAT, MPI_SUM, comm_, &request);
      requests_.push_back(request);
    }
  }

  void progress() override {
    if (requests_.empty()) return;
    int done = 0;
    MPI_Testall(int(requests_.size()), requests_.data(), &done, MPI_STATUSES_IGNORE);
    if (done) requests_.clear();
  }

  void wait_all() override {
    if (requests_.empty()) return;
    MPI_Waitall(int(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE);
    requests_.clear();
  }

 protected:
  void end_job(const std::string& message) override { abort_job(message.c_str()); }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
  std::vector<MPI_Request> requests_;  // started sums; keeps its capacity between steps
};

}  // namespace

bool available() { return true; }

Environment::Environment(int& argc, char**& argv) : uncaught_at_start_(std::uncaught_exceptions()) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized)
    throw std::logic_error(
        "nn::distributed::Environment: MPI is already initialised (one "
        "Environment per process)");
  if (!launched_by_mpirun()) return;  // one process: no MPI at all
  MPI_Init(&argc, &argv);
  started_mpi_ = true;
  communicator_ = std::make_unique<MpiCommunicator>();
  rank_ = g_rank = communicator_->rank();
  size_ = g_size = communicator_->size();
  std::set_terminate(&on_terminate);
}

Environment::~Environment() {
  if (!started_mpi_) return;
  // Destroyed by an exception: this rank is failing, and MPI_Finalize would wait for the others.
  if (std::uncaught_exceptions() > uncaught_at_start_)
    abort_job("an exception is leaving main: ending the job");
  communicator_.reset();
  MPI_Finalize();
}

void Environment::fail(const char* program, const char* what) noexcept {
  if (!started_mpi_) {
    std::fprintf(stderr, "%s: %s\n", program, what);
    return;
  }
  std::string message = program;
  message += ": ";
  message += what;
  abort_job(message.c_str());
}

}  // namespace nn::distributed
