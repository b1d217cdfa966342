// leakguard/version.h
//
// The version of the leakguard headers, and of the compiled core they link.

#ifndef LEAKGUARD_VERSION_H_
#define LEAKGUARD_VERSION_H_

#include "leakguard/export.h"

/// Major version of the headers (SameMajorVersion compatibility).
#define LEAKGUARD_VERSION_MAJOR 0
/// Minor version of the headers.
#define LEAKGUARD_VERSION_MINOR 1
/// Patch version of the headers.
#define LEAKGUARD_VERSION_PATCH 0

/// leakguard: find and prevent memory leaks in the CPython a host embeds.
namespace leakguard {

/// The version of the linked libleakguard, "MAJOR.MINOR.PATCH".
LEAKGUARD_EXPORT const char* Version() noexcept;

/// The CPython version libleakguard was compiled against, e.g. "3.11.2".
LEAKGUARD_EXPORT const char* CompiledPythonVersion() noexcept;

}  // namespace leakguard

#endif  // LEAKGUARD_VERSION_H_
