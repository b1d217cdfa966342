// Internal: early returns on a failed absl::Status / absl::StatusOr, shaped
// like Abseil's own (internal) macros. Not installed; hosts write the
// `if (!x.ok()) return x.status();` these expand to.
//
//   LEAKGUARD_RETURN_IF_ERROR(CheckGil());
//   LEAKGUARD_ASSIGN_OR_RETURN(Ref sys, Import("sys"));

#ifndef LEAKGUARD_SRC_PYTHON_STATUS_MACROS_H_
#define LEAKGUARD_SRC_PYTHON_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace leakguard::internal {

inline const absl::Status& StatusOf(const absl::Status& status) { return status; }
template <typename T>
const absl::Status& StatusOf(const absl::StatusOr<T>& value) {
  return value.status();
}

}  // namespace leakguard::internal

/// Returns the status of `expr` (an absl::Status or absl::StatusOr) from the
/// enclosing function when it is not OK.
#define LEAKGUARD_RETURN_IF_ERROR(expr)                                                     \
  do {                                                                                      \
    const auto& leakguard_status_ = (expr);                                                 \
    if (!leakguard_status_.ok()) return ::leakguard::internal::StatusOf(leakguard_status_); \
  } while (false)

#define LEAKGUARD_STATUS_CONCAT_INNER_(a, b) a##b
#define LEAKGUARD_STATUS_CONCAT_(a, b) LEAKGUARD_STATUS_CONCAT_INNER_(a, b)

/// Evaluates `rexpr` (an absl::StatusOr<T>); returns its status when it is not
/// OK, else moves its value into `lhs` (a declaration or an lvalue).
#define LEAKGUARD_ASSIGN_OR_RETURN(lhs, rexpr)                                                   \
  LEAKGUARD_ASSIGN_OR_RETURN_IMPL_(LEAKGUARD_STATUS_CONCAT_(leakguard_statusor_, __LINE__), lhs, \
                                   rexpr)

#define LEAKGUARD_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                     \
  if (!statusor.ok()) return std::move(statusor).status();     \
  lhs = *std::move(statusor)

#endif  // LEAKGUARD_SRC_PYTHON_STATUS_MACROS_H_
