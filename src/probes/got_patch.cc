// Relocation-slot patching (got_patch.h).
//
// For each object dl_iterate_phdr reports, the dynamic section gives the
// symbol and string tables and two relocation tables: DT_JMPREL (the PLT's
// slots, R_*_JUMP_SLOT) and DT_RELA (among others R_*_GLOB_DAT, the slots
// of calls made through the GOT by code built with -fno-plt, and of
// function pointers taken to the symbol). A slot whose relocation names
// one of the replacement symbols is rewritten. Slots in the object's
// RELRO range are read-only once the loader is done: they are made
// writable for the store and read-only again.

#include "probes/got_patch.h"

#include <elf.h>
#include <link.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace leakguard::internal {
namespace {

#if defined(__x86_64__)
constexpr uint32_t kJumpSlot = R_X86_64_JUMP_SLOT;
constexpr uint32_t kGlobDat = R_X86_64_GLOB_DAT;
#elif defined(__aarch64__)
constexpr uint32_t kJumpSlot = R_AARCH64_JUMP_SLOT;
constexpr uint32_t kGlobDat = R_AARCH64_GLOB_DAT;
#else
constexpr uint32_t kJumpSlot = 0xffffffff;
constexpr uint32_t kGlobDat = 0xffffffff;
#endif

std::mutex& PatchLock() {
  static std::mutex* lock = new std::mutex;  // never freed: hooks may patch late
  return *lock;
}

// The value each rewritten slot had first, by slot address. Guarded by
// PatchLock().
std::unordered_map<void**, void*>& Originals() {
  static auto* originals = new std::unordered_map<void**, void*>;
  return *originals;
}

// One object's tables, read from its dynamic section.
struct ObjectTables {
  uintptr_t base = 0;
  const ElfW(Sym) * symtab = nullptr;
  const char* strtab = nullptr;
  const ElfW(Rela) * jmprel = nullptr;
  std::size_t jmprel_size = 0;
  const ElfW(Rela) * rela = nullptr;
  std::size_t rela_size = 0;
  uintptr_t relro_begin = 0, relro_end = 0;
  bool has_runpath = false;
};

// The loader relocates the pointers of the dynamic section in place for
// ordinary objects; the vDSO's (never patched here) and some loaders'
// stay relative to the base.
uintptr_t Address(uintptr_t base, ElfW(Addr) ptr) { return ptr < base ? base + ptr : ptr; }

bool ReadTables(const dl_phdr_info* info, ObjectTables* t) {
  t->base = info->dlpi_addr;
  const ElfW(Dyn)* dyn = nullptr;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type == PT_DYNAMIC) dyn = reinterpret_cast<const ElfW(Dyn)*>(t->base + ph.p_vaddr);
    if (ph.p_type == PT_GNU_RELRO) {
      t->relro_begin = t->base + ph.p_vaddr;
      t->relro_end = t->relro_begin + ph.p_memsz;
    }
  }
  if (dyn == nullptr) return false;
  for (; dyn->d_tag != DT_NULL; ++dyn) {
    switch (dyn->d_tag) {
      case DT_SYMTAB:
        t->symtab = reinterpret_cast<const ElfW(Sym)*>(Address(t->base, dyn->d_un.d_ptr));
        break;
      case DT_STRTAB:
        t->strtab = reinterpret_cast<const char*>(Address(t->base, dyn->d_un.d_ptr));
        break;
      case DT_JMPREL:
        t->jmprel = reinterpret_cast<const ElfW(Rela)*>(Address(t->base, dyn->d_un.d_ptr));
        break;
      case DT_PLTRELSZ:
        t->jmprel_size = dyn->d_un.d_val;
        break;
      case DT_RELA:
        t->rela = reinterpret_cast<const ElfW(Rela)*>(Address(t->base, dyn->d_un.d_ptr));
        break;
      case DT_RELASZ:
        t->rela_size = dyn->d_un.d_val;
        break;
      case DT_RUNPATH:
      case DT_RPATH:
        t->has_runpath = true;
        break;
      default:
        break;
    }
  }
  return t->symtab != nullptr && t->strtab != nullptr;
}

// Calls f(slot, symbol name) for each JUMP_SLOT or GLOB_DAT relocation.
template <typename F>
void ForEachSlot(const ObjectTables& t, F&& f) {
  auto walk = [&](const ElfW(Rela) * rel, std::size_t size) {
    if (rel == nullptr) return;
    const std::size_t n = size / sizeof(ElfW(Rela));
    for (std::size_t i = 0; i < n; ++i) {
      const uint32_t type = ELF64_R_TYPE(rel[i].r_info);
      if (type != kJumpSlot && type != kGlobDat) continue;
      const uint32_t sym = ELF64_R_SYM(rel[i].r_info);
      if (sym == 0) continue;
      const char* name = t.strtab + t.symtab[sym].st_name;
      f(reinterpret_cast<void**>(t.base + rel[i].r_offset), name);
    }
  };
  walk(t.jmprel, t.jmprel_size);
  walk(t.rela, t.rela_size);
}

// Stores `value` into `slot`, making a read-only (RELRO) page writable for
// the store. Returns false when the page could not be made writable.
bool WriteSlot(const ObjectTables& t, void** slot, void* value) {
  const uintptr_t addr = reinterpret_cast<uintptr_t>(slot);
  const bool relro = addr >= t.relro_begin && addr < t.relro_end;
  if (relro) {
    const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    void* start = reinterpret_cast<void*>(addr & ~(page - 1));
    if (mprotect(start, page, PROT_READ | PROT_WRITE) != 0) return false;
    __atomic_store_n(slot, value, __ATOMIC_RELEASE);
    mprotect(start, page, PROT_READ);
    return true;
  }
  __atomic_store_n(slot, value, __ATOMIC_RELEASE);
  return true;
}

bool IsVdso(const char* name) { return std::strstr(name, "linux-vdso") != nullptr; }
bool IsLoader(const char* name) { return std::strstr(name, "/ld-linux") != nullptr; }

struct PatchArgs {
  const std::vector<GotReplacement>* replacements;
  const GotScope* scope;
  int rewritten = 0;
};

int PatchOne(dl_phdr_info* info, std::size_t, void* data) {
  auto* args = static_cast<PatchArgs*>(data);
  const char* name = info->dlpi_name != nullptr ? info->dlpi_name : "";
  if (IsVdso(name) || IsLoader(name)) return 0;
  const std::string path = name;
  for (const std::string& ex : args->scope->exclude) {
    if (ex == "<main>" ? path.empty() : !ex.empty() && path.find(ex) != std::string::npos) {
      return 0;
    }
  }
  ObjectTables t;
  if (!ReadTables(info, &t)) return 0;
  const GotObject object{path, t.base, t.has_runpath};
  ForEachSlot(t, [&](void** slot, const char* symbol) {
    for (const GotReplacement& r : *args->replacements) {
      if (std::strcmp(symbol, r.symbol) != 0) continue;
      if (r.only_in != nullptr && !r.only_in(object)) continue;
      void* current = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
      if (current == r.replacement) continue;
      // A slot seen again after its object was unloaded and another one
      // loaded at the same address gets the new object's value.
      Originals()[slot] = current;
      if (WriteSlot(t, slot, r.replacement)) ++args->rewritten;
    }
  });
  return 0;
}

struct RestoreArgs {
  const std::vector<GotReplacement>* replacements;
  int restored = 0;
};

int RestoreOne(dl_phdr_info* info, std::size_t, void* data) {
  auto* args = static_cast<RestoreArgs*>(data);
  const char* name = info->dlpi_name != nullptr ? info->dlpi_name : "";
  if (IsVdso(name)) return 0;
  ObjectTables t;
  if (!ReadTables(info, &t)) return 0;
  ForEachSlot(t, [&](void** slot, const char*) {
    void* current = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    for (const GotReplacement& r : *args->replacements) {
      if (current != r.replacement) continue;
      auto it = Originals().find(slot);
      if (it == Originals().end()) continue;
      if (WriteSlot(t, slot, it->second)) ++args->restored;
      Originals().erase(it);
      break;
    }
  });
  return 0;
}

struct ListArgs {
  const std::vector<std::string>* symbols;
  std::vector<GotSlot>* out;
};

int ListOne(dl_phdr_info* info, std::size_t, void* data) {
  auto* args = static_cast<ListArgs*>(data);
  const char* name = info->dlpi_name != nullptr ? info->dlpi_name : "";
  if (IsVdso(name)) return 0;
  ObjectTables t;
  if (!ReadTables(info, &t)) return 0;
  ForEachSlot(t, [&](void** slot, const char* symbol) {
    for (const std::string& s : *args->symbols) {
      if (s != symbol) continue;
      args->out->push_back(GotSlot{name, symbol, slot, __atomic_load_n(slot, __ATOMIC_ACQUIRE)});
    }
  });
  return 0;
}

int GenerationOne(dl_phdr_info* info, std::size_t size, void* data) {
  if (size >= offsetof(dl_phdr_info, dlpi_subs)) {
    *static_cast<uint64_t*>(data) = info->dlpi_adds;
  }
  return 1;  // the first object is enough: every entry carries the count
}

}  // namespace

int PatchGot(const std::vector<GotReplacement>& replacements, const GotScope& scope) {
  std::lock_guard<std::mutex> lock(PatchLock());
  PatchArgs args{&replacements, &scope};
  dl_iterate_phdr(PatchOne, &args);
  return args.rewritten;
}

int RestoreGot(const std::vector<GotReplacement>& replacements) {
  std::lock_guard<std::mutex> lock(PatchLock());
  RestoreArgs args{&replacements};
  dl_iterate_phdr(RestoreOne, &args);
  return args.restored;
}

std::vector<GotSlot> ListGotSlots(const std::vector<std::string>& symbols) {
  std::vector<GotSlot> out;
  ListArgs args{&symbols, &out};
  std::lock_guard<std::mutex> lock(PatchLock());
  dl_iterate_phdr(ListOne, &args);
  return out;
}

uint64_t LoadedObjectGeneration() {
  uint64_t adds = 0;
  dl_iterate_phdr(GenerationOne, &adds);
  return adds;
}

}  // namespace leakguard::internal
