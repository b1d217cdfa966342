// Internal: the Python source of the doctor's namespace scan
// (src/doctor/doctor_scan.py, embedded at build time). Not installed.

#ifndef LEAKGUARD_SRC_DOCTOR_DOCTOR_SCAN_H_
#define LEAKGUARD_SRC_DOCTOR_DOCTOR_SCAN_H_

namespace leakguard::internal {

// Defines scan(module), thread_locals(module), gc_automatic() and
// saveall_collect(); see the source for their contracts.
extern const char kDoctorScanSource[];

// The file name the scan is compiled under, so that its frames can be told
// from the user's (OwnFrameFilters lists it).
inline constexpr char kDoctorScanFilename[] = "<leakguard>/doctor_scan.py";

}  // namespace leakguard::internal

#endif  // LEAKGUARD_SRC_DOCTOR_DOCTOR_SCAN_H_
