// Internal: the Python source of the doctor's namespace scan. Not installed.

#ifndef LEAKGUARD_SRC_DOCTOR_SCAN_H_
#define LEAKGUARD_SRC_DOCTOR_SCAN_H_

namespace leakguard::internal {

// Defines scan(module), thread_locals(module), gc_automatic() and
// saveall_collect(); see the source for their contracts.
extern const char kDoctorScanSource[];

}  // namespace leakguard::internal

#endif  // LEAKGUARD_SRC_DOCTOR_SCAN_H_
