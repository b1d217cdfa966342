// Internal: the doctor's facts, the numbers derived from an Investigation
// that the rule table's conditions read. Not installed.

#ifndef LEAKGUARD_SRC_DOCTOR_FACTS_H_
#define LEAKGUARD_SRC_DOCTOR_FACTS_H_

#include <cstdint>
#include <vector>

#include "leakguard/doctor.h"

namespace leakguard::internal {

// A series "grows steadily" when at least 90% of its steps are at least
// `floor` and the total is positive: regrtest's every-run rule with room for
// one noisy step in twenty.
bool Steady(const std::vector<int64_t>& steps, int64_t floor);

// Differences of consecutive values.
std::vector<int64_t> Steps(const std::vector<int64_t>& series);

struct Facts {
  const Investigation* inv = nullptr;
  int repeat = 1;
  // Sums over the measured iterations.
  IterationDelta total;
  int64_t traced_total = 0;
  // The measured iterations' values, one per iteration.
  std::vector<int64_t> blocks, traced, rss, fds, threads;

  bool fds_steady = false;
  bool threads_steady = false;
  // Automatic collection off, and at least one cyclic object per iteration
  // piled up.
  bool cycles_pile_up = false;
  // RSS rises steadily by pages, by 256 KiB at least, and traced memory
  // explains less than a quarter of it.
  bool native = false;
  // The namespace container that grew steadily (shortest path among equals),
  // or null; and whether it gained in every measured iteration.
  const HolderEvidence* holder = nullptr;
  bool holder_every_step = false;
  // The Python heap grows: blocks or traced memory steady with traced growth,
  // or a holder that gains every iteration; never when `native`.
  bool python_heap = false;
  // NumPy's traced buffers are more than half of the traced growth.
  bool numpy_dominant = false;
  // Containers with a stated limit that grew over the measured iterations
  // (the script's, or bounded internals), and of those the ones still below
  // their limit, with the iterations they need to fill at the rate seen.
  std::vector<const HolderEvidence*> bounded;
  std::vector<const HolderEvidence*> filling;
  int64_t iterations_to_fill = 0;
  // No unbounded holder grew steadily, and a bounded one is still filling:
  // the heap's growth may be that filling.
  bool bounded_filling = false;
  // The growth is worth a cause even with no holder: at least
  // kUnexplainedFloor traced bytes per iteration, or gc-tracked objects of
  // some type grew by one per iteration, or a back-reference chain was
  // found. Below it (a few untracked strings an interpreter cache keeps) it
  // is noise.
  bool above_noise_floor = false;
  // A back-reference chain was found and no bounded container holds its
  // sample.
  bool chain_counts = false;
  // The heap's growth is dying away (a warm-up longer than the warm-up
  // iterations): the last third of the measured iterations grew by less than
  // half of the first third, and no holder gained in every iteration.
  bool settling = false;

  // For the verdict when no cause fires.
  int growing_steps = 0;                       // measured iterations whose blocks grew
  int64_t block_growth = 0;                    // blocks gained over the measured iterations
  std::vector<const HolderEvidence*> stopped;  // grew, then stopped
  int64_t first_blocks = 0;                    // the first (warm-up) iteration's blocks
  int64_t run_blocks = 0;                      // blocks over every iteration
  double freed_per_iter = 0;                   // what the collector freed per iteration
  int64_t first_rss = 0;                       // the first iteration's RSS growth
};

Facts DeriveFacts(const Investigation& inv);

// The smallest step a traced-bytes series must make in 90% of the
// iterations to count as growth: below it is noise (free lists, caches of
// the interpreter settling).
inline constexpr int64_t kTracedNoiseFloor = 64;
inline constexpr int64_t kUnexplainedFloor = 256;

// Whether the container stays within a limit it states, one the growth
// seen would reach within ten times the iteration budget (max_repeat).
bool IsBounded(const HolderEvidence& h, const DoctorOptions& options);

// "app.f.__defaults__[0]" names the defaults tuple the user wrote.
std::string HolderName(const HolderEvidence& h);

}  // namespace leakguard::internal

#endif  // LEAKGUARD_SRC_DOCTOR_FACTS_H_
