// leakguard/export.h
//
// LEAKGUARD_EXPORT marks the declarations that the compiled core exports.
// leakguard builds with hidden symbol visibility, so only marked symbols are
// part of libleakguard's ABI. Define LEAKGUARD_STATIC when linking the static
// library (the CMake package and the pkg-config file do it for you).

#ifndef LEAKGUARD_EXPORT_H_
#define LEAKGUARD_EXPORT_H_

#if defined(LEAKGUARD_STATIC)
#define LEAKGUARD_EXPORT
#elif defined(_WIN32)
#if defined(LEAKGUARD_BUILDING)
#define LEAKGUARD_EXPORT __declspec(dllexport)
#else
#define LEAKGUARD_EXPORT __declspec(dllimport)
#endif
#else
#define LEAKGUARD_EXPORT __attribute__((visibility("default")))
#endif

#endif  // LEAKGUARD_EXPORT_H_
