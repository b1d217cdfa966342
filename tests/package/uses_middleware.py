"""Run by `leakguard run`: the built-in module and the package's middleware."""
import leakguard
import leakguard.middleware

print("origin", leakguard.__spec__.origin)
print("middleware", leakguard.middleware.__file__)
print("same module", leakguard.middleware.leakguard is leakguard)
monitor = leakguard.middleware.RequestMonitor(trace_every=0)
monitor.end(monitor.begin("GET /"))
print("requests", monitor.report()["requests"])
