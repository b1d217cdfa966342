// Internal: redirects the calls that loaded objects make to a few named
// functions (malloc, free, ...) by rewriting their relocation slots (the
// GOT entries behind the PLT, and the GOT entries of code built with
// -fno-plt), and puts the original values back (got_patch.cc).
//
// The patcher keeps the value each slot had before it was first rewritten,
// by slot address. A scan walks every loaded object (dl_iterate_phdr), so
// one that was loaded since the last scan is patched too; Restore() walks
// them again and writes back only slots that still hold a replacement, so
// an object unloaded meanwhile is never written to.
//
// Thread safety: Patch() and Restore() serialize on a lock of their own.
// A slot is rewritten with one aligned 8-byte store, so a thread calling
// through it meanwhile calls either the old or the new function. The
// caller makes sure that allocations made by the patcher itself (it uses
// std::vector and std::string) do not come back into it.

#ifndef LEAKGUARD_SRC_PROBES_GOT_PATCH_H_
#define LEAKGUARD_SRC_PROBES_GOT_PATCH_H_

#include <cstdint>
#include <string>
#include <vector>

namespace leakguard::internal {

/// What a replacement's predicate knows of an object.
struct GotObject {
  const std::string& path;  // "" for the main program
  uintptr_t base;           // its load bias (link_map::l_addr)
  bool has_runpath;         // DT_RUNPATH or DT_RPATH present
};

/// A function to redirect: calls to `symbol` go to `replacement`.
/// `only_in` restricts it to objects for which the predicate holds (null:
/// every patched object).
struct GotReplacement {
  const char* symbol;
  void* replacement;
  bool (*only_in)(const GotObject& object) = nullptr;
};

/// One relocation slot of a loaded object that refers to a symbol named
/// in a replacement list.
struct GotSlot {
  std::string object;  // the object's path ("" for the main program)
  std::string symbol;
  void** slot = nullptr;
  void* value = nullptr;  // what the slot holds now
};

/// Which objects a scan patches.
struct GotScope {
  /// Objects whose path contains one of these are left alone ("<main>"
  /// stands for the main program).
  std::vector<std::string> exclude;
};

/// Rewrites, in every loaded object in `scope`, each slot that refers to a
/// replacement's symbol and does not already hold the replacement. Returns
/// the number of slots rewritten.
int PatchGot(const std::vector<GotReplacement>& replacements, const GotScope& scope);

/// Writes back the original value of every slot that holds one of the
/// replacements. Returns the number of slots restored.
int RestoreGot(const std::vector<GotReplacement>& replacements);

/// The slots of every loaded object that refer to `symbols`, with their
/// current values (for tests and diagnostics).
std::vector<GotSlot> ListGotSlots(const std::vector<std::string>& symbols);

/// The number of objects loaded into the process so far (glibc's
/// dlpi_adds): a cheap test of whether a scan could find something new.
uint64_t LoadedObjectGeneration();

}  // namespace leakguard::internal

#endif  // LEAKGUARD_SRC_PROBES_GOT_PATCH_H_
