// leakguard/leakguard.h
//
// Everything leakguard offers, in one include. Prefer the narrower headers in
// libraries; this one is for hosts and quick experiments.

#ifndef LEAKGUARD_LEAKGUARD_H_
#define LEAKGUARD_LEAKGUARD_H_

#include "leakguard/bounded_cache.h"
#include "leakguard/doctor.h"
#include "leakguard/event_bus.h"
#include "leakguard/gc.h"
#include "leakguard/leak_check.h"
#include "leakguard/leak_detector.h"
#include "leakguard/memory_guard.h"
#include "leakguard/object_graph.h"
#include "leakguard/process.h"
#include "leakguard/profile.h"
#include "leakguard/prometheus.h"
#include "leakguard/python/call.h"
#include "leakguard/python/error.h"
#include "leakguard/python/gil.h"
#include "leakguard/python/interpreter.h"
#include "leakguard/python/python.h"
#include "leakguard/python/ref.h"
#include "leakguard/report.h"
#include "leakguard/request_tracker.h"
#include "leakguard/sampler.h"
#include "leakguard/sink.h"
#include "leakguard/tracemalloc.h"
#include "leakguard/version.h"
#include "leakguard/weakref.h"

#endif  // LEAKGUARD_LEAKGUARD_H_
