"""leakguard.EventBus: weakly held listeners, pruning, failures, emits that
race subscribe/unsubscribe from several threads."""
import gc
import sys
import threading
import unittest
import weakref

import leakguard


class Recorder:
    def __init__(self, name, log):
        self.name = name
        self.log = log

    def on(self, *args, **kwargs):
        self.log.append((self.name, args, kwargs))


class EventBusTest(unittest.TestCase):
    def setUp(self):
        self.log = []

    def test_bound_method_lives_as_long_as_its_object(self):
        bus = leakguard.EventBus()
        r = Recorder("r", self.log)
        bus.subscribe(r.on)  # the bound method object dies right here
        self.assertEqual(len(bus), 1)
        self.assertEqual(bus.emit(1, key="v"), 1)
        self.assertEqual(self.log, [("r", (1,), {"key": "v"})])
        ref = weakref.ref(r)
        del r  # reference counting alone: no gc.collect()
        self.assertIsNone(ref())
        self.assertEqual(len(bus), 0)
        self.assertEqual(bus.emit(2), 0)
        self.assertEqual(len(self.log), 1)

    def test_function_is_held_weakly(self):
        bus = leakguard.EventBus()

        def handler(x):
            self.log.append(x)

        bus.subscribe(handler)
        bus.emit("a")
        del handler
        self.assertEqual(len(bus), 0)
        bus.emit("b")
        self.assertEqual(self.log, ["a"])

    def test_lambda_made_in_the_call_dies_at_once_unless_strong(self):
        bus = leakguard.EventBus()
        bus.subscribe(lambda: self.log.append("weak"))
        self.assertEqual(len(bus), 0)
        strong = bus.subscribe(lambda: self.log.append("strong"), weak=False)
        self.assertEqual(bus.emit(), 1)
        self.assertTrue(bus.unsubscribe(strong))
        self.assertEqual(bus.emit(), 0)
        self.assertEqual(self.log, ["strong"])

    def test_calls_in_subscription_order_and_returns_count(self):
        bus = leakguard.EventBus()
        a, b = Recorder("a", self.log), Recorder("b", self.log)

        def f(*args):
            self.log.append(("f", args, {}))

        bus.subscribe(b.on)
        bus.subscribe(f)
        bus.subscribe(a.on)
        self.assertEqual(bus.emit(0), 3)
        self.assertEqual([name for name, _, _ in self.log], ["b", "f", "a"])

    def test_subscribe_returns_the_callback_and_works_as_decorator(self):
        bus = leakguard.EventBus()

        @bus.subscribe
        def on_event(x):
            self.log.append(x)

        self.assertTrue(callable(on_event))
        bus.emit(5)
        self.assertEqual(self.log, [5])

    def test_same_listener_is_subscribed_once(self):
        bus = leakguard.EventBus()
        r = Recorder("r", self.log)
        bus.subscribe(r.on)
        bus.subscribe(r.on)
        self.assertEqual(len(bus), 1)
        bus.emit()
        self.assertEqual(len(self.log), 1)

    def test_unsubscribe_matches_bound_methods_by_function_and_object(self):
        bus = leakguard.EventBus()
        r1, r2 = Recorder("1", self.log), Recorder("2", self.log)
        bus.subscribe(r1.on)
        bus.subscribe(r2.on)
        self.assertTrue(bus.unsubscribe(r1.on))  # a different method object
        self.assertFalse(bus.unsubscribe(r1.on))
        self.assertFalse(bus.unsubscribe(print))
        bus.emit()
        self.assertEqual([name for name, _, _ in self.log], ["2"])

    def test_listeners_returns_live_callables(self):
        bus = leakguard.EventBus()
        r = Recorder("r", self.log)
        bus.subscribe(r.on)
        bus.subscribe(len)
        self.assertEqual(bus.listeners(), [r.on, len])

    def test_failing_listener_does_not_stop_the_others(self):
        failures = []
        bus = leakguard.EventBus(on_error=lambda exc, cb: failures.append((exc, cb)))

        def bad(x):
            raise ValueError(f"bad {x}")

        def good(x):
            self.log.append(x)

        bus.subscribe(bad)
        bus.subscribe(good)
        self.assertEqual(bus.emit(1), 2)
        self.assertEqual(self.log, [1])
        self.assertEqual(len(failures), 1)
        self.assertIsInstance(failures[0][0], ValueError)
        self.assertEqual(str(failures[0][0]), "bad 1")
        self.assertIs(failures[0][1], bad)

    def test_failure_goes_to_unraisablehook_by_default(self):
        seen = []
        old = sys.unraisablehook
        sys.unraisablehook = seen.append
        try:
            bus = leakguard.EventBus()
            r = Recorder("r", self.log)

            def boom():
                raise KeyError("k")

            bus.subscribe(boom)
            bus.subscribe(r.on)
            self.assertEqual(bus.emit(), 2)
        finally:
            sys.unraisablehook = old
        self.assertEqual(len(seen), 1)
        self.assertIs(seen[0].exc_type, KeyError)
        self.assertIs(seen[0].object, boom)
        self.assertEqual(len(self.log), 1)

    def test_base_exceptions_propagate(self):
        bus = leakguard.EventBus()

        def stop():
            raise KeyboardInterrupt

        bus.subscribe(stop)
        bus.subscribe(lambda: self.log.append("after"), weak=False)
        with self.assertRaises(KeyboardInterrupt):
            bus.emit()
        self.assertEqual(self.log, [])

    def test_endless_recursion_into_emit_reaches_on_error_once(self):
        errors = []
        bus = leakguard.EventBus(on_error=lambda exc, listener: errors.append((exc, listener)))
        depth = []

        def recurse(x):
            depth.append(x)
            bus.emit(x + 1)

        bus.subscribe(recurse)
        self.assertEqual(bus.emit(0), 1)
        self.assertGreater(len(depth), 10)
        self.assertEqual(len(errors), 1)
        exc, listener = errors[0]
        self.assertIs(type(exc), RecursionError)
        self.assertIs(listener, recurse)
        # The bus still works afterwards.
        bus.unsubscribe(recurse)
        seen = []
        bus.subscribe(seen.append, weak=False)
        self.assertEqual(bus.emit("after"), 1)
        self.assertEqual(seen, ["after"])

    def test_endless_recursion_into_emit_reaches_unraisablehook(self):
        seen = []
        old = sys.unraisablehook
        sys.unraisablehook = seen.append
        try:
            bus = leakguard.EventBus()

            def recurse():
                bus.emit()

            bus.subscribe(recurse)
            self.assertEqual(bus.emit(), 1)
        finally:
            sys.unraisablehook = old
        self.assertEqual(len(seen), 1)
        self.assertIs(seen[0].exc_type, RecursionError)
        self.assertIs(seen[0].object, recurse)

    def test_unsubscribe_during_emit_skips_later_listener(self):
        bus = leakguard.EventBus()
        second = Recorder("second", self.log)

        def first():
            self.log.append(("first", (), {}))
            bus.unsubscribe(second.on)

        bus.subscribe(first)
        bus.subscribe(second.on)
        self.assertEqual(bus.emit(), 1)
        self.assertEqual([n for n, _, _ in self.log], ["first"])

    def test_subscribe_during_emit_takes_effect_next_emit(self):
        bus = leakguard.EventBus()
        late = Recorder("late", self.log)

        def adder():
            self.log.append(("adder", (), {}))
            bus.subscribe(late.on)

        bus.subscribe(adder)
        bus.emit()
        bus.emit()
        self.assertEqual([n for n, _, _ in self.log], ["adder", "adder", "late"])

    def test_object_dropped_during_emit_is_skipped(self):
        bus = leakguard.EventBus()
        holder = {"victim": Recorder("victim", self.log)}

        def killer():
            self.log.append(("killer", (), {}))
            del holder["victim"]

        bus.subscribe(killer)
        bus.subscribe(holder["victim"].on)
        self.assertEqual(bus.emit(), 1)
        self.assertEqual(len(bus), 1)
        self.assertEqual([n for n, _, _ in self.log], ["killer"])

    def test_nested_emit(self):
        bus = leakguard.EventBus()

        def again(n):
            self.log.append(n)
            if n < 3:
                bus.emit(n + 1)

        bus.subscribe(again)
        bus.emit(1)
        self.assertEqual(self.log, [1, 2, 3])

    def test_clear(self):
        bus = leakguard.EventBus()
        r = Recorder("r", self.log)
        bus.subscribe(r.on)
        bus.clear()
        self.assertEqual(len(bus), 0)
        self.assertEqual(bus.emit(), 0)

    def test_bad_input(self):
        bus = leakguard.EventBus()
        with self.assertRaisesRegex(TypeError, "needs a callable, not int"):
            bus.subscribe(3)
        with self.assertRaisesRegex(TypeError, "on_error must be callable"):
            leakguard.EventBus(on_error=1)

        class NoWeak:
            __slots__ = ()

            def __call__(self):
                pass

        with self.assertRaisesRegex(TypeError, "'NoWeak' objects do not support weak "
                                               "references; pass weak=False"):
            bus.subscribe(NoWeak())
        self.assertEqual(len(bus), 0)
        bus.subscribe(NoWeak(), weak=False)
        self.assertEqual(len(bus), 1)

    def test_bus_in_a_cycle_is_collected(self):
        bus = leakguard.EventBus()

        class Owner:
            def __init__(self):
                self.bus = bus

            def on(self):
                pass

        o = Owner()
        bus.subscribe(o.on)
        bus.subscribe(lambda: bus, weak=False)  # the bus holds itself
        ref = weakref.ref(bus)
        del bus, o
        gc.collect()
        self.assertIsNone(ref())

    def test_repr(self):
        bus = leakguard.EventBus()
        r = Recorder("r", self.log)
        bus.subscribe(r.on)
        self.assertEqual(repr(bus), "<leakguard.EventBus with 1 live listeners>")

    def test_threads_storm_loses_no_live_listener(self):
        bus = leakguard.EventBus()
        counts = [0] * 4
        permanent = []
        for i in range(4):
            def make(i=i):
                def listener(_):
                    counts[i] += 1
                return listener
            permanent.append(bus.subscribe(make()))
        stop = threading.Event()
        errors = []

        def churn():
            try:
                while not stop.is_set():
                    r = Recorder("t", [])
                    bus.subscribe(r.on)
                    bus.emit  # noqa: B018 - touch the attribute
                    if len(self.log) % 2:
                        bus.unsubscribe(r.on)
                    del r
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

        emits = 3000

        def emitter():
            for n in range(emits):
                bus.emit(n)

        churners = [threading.Thread(target=churn) for _ in range(2)]
        emitters = [threading.Thread(target=emitter) for _ in range(2)]
        for t in churners + emitters:
            t.start()
        for t in emitters:
            t.join()
        stop.set()
        for t in churners:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(counts, [2 * emits] * 4)
        self.assertEqual(len(bus), 4)


if __name__ == "__main__":
    unittest.main()
