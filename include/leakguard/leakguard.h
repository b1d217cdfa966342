// leakguard/leakguard.h
//
// Everything leakguard offers, in one include. Prefer the narrower headers in
// libraries; this one is for hosts and quick experiments.

#ifndef LEAKGUARD_LEAKGUARD_H_
#define LEAKGUARD_LEAKGUARD_H_

#include "leakguard/process.h"
#include "leakguard/python/error.h"
#include "leakguard/python/gil.h"
#include "leakguard/python/interpreter.h"
#include "leakguard/python/python.h"
#include "leakguard/python/ref.h"
#include "leakguard/version.h"

#endif  // LEAKGUARD_LEAKGUARD_H_
