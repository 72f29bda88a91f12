"""A Hypothesis state machine: create/log/fork/rewind/resume/finish/delete/gc against a small Python
model, comparing history, summary, config, lineage and runs after every step."""

import math
import shutil
import tempfile

import forklog
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

IDS = ["a", "b", "c", "d"]
KEYS = ["loss", "acc", "lr"]

values = st.one_of(
    st.floats(allow_nan=False, width=64),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    st.text(max_size=5),
    st.none(),
)
rows = st.dictionaries(st.sampled_from(KEYS), values, max_size=3)


class Version:
    """One run version in the model: its visible events (inherited first), lineage and writer state."""

    def __init__(self, id, version, events, base, lineage, parent=None, fork_step=None):
        self.id = id
        self.version = version
        self.events = list(events)  # (kind, step, payload)
        self.base = base  # fork/rewind step, or None
        self.lineage = lineage  # [(ref, fork_step)]
        self.parent = parent
        self.fork_step = fork_step

    @property
    def ref(self):
        return f"{self.id}@v{self.version}"

    def last(self):
        """The last log step, or the fork/rewind step when that is later (a fresh fork's own start)."""
        steps = [s for k, s, _ in self.events if k == "log"][-1:] + ([self.base] if self.base is not None else [])
        return max(steps) if steps else None

    def next_step(self):
        last = self.last()
        return 0 if last is None else last + 1

    def current_step(self):
        last = self.last()
        return 0 if last is None else last

    def history(self):
        return [(s, p) for k, s, p in self.events if k == "log"]

    def config(self):
        out = {}
        for k, _, p in self.events:
            if k == "config":
                out.update(p)
        return out

    def summary(self):
        out, explicit = {}, {}
        for k, _, p in self.events:
            if k == "log":
                out.update(p)
            elif k == "summary":
                explicit.update(p)
        out.update(explicit)
        return out

    def state(self, open_):
        if open_:
            return "running"
        if self.events and self.events[-1][0] == "finish":
            return "finished"
        return "crashed"


def same(a, b):
    if isinstance(a, float) and isinstance(b, float):
        return math.copysign(1, a) == math.copysign(1, b) and (a == b or (a != a and b != b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


class StoreMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="forklog-model-")
        self.store = forklog.Store(self.dir)
        self.live = {}  # id -> Version
        self.archived = {}  # ref -> Version
        self.deleted = set()
        self.writers = {}  # id -> forklog.Run

    def teardown(self):
        for w in self.writers.values():
            w.finish()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- rules -------------------------------------------------------------------------------------

    @rule(id=st.sampled_from(IDS), config=st.dictionaries(st.sampled_from(["lr", "bs"]), values, max_size=2))
    def create(self, id, config):
        if id in self.live or id in self.deleted:
            if id in self.live:
                try:
                    self.store.init(id, config=config)
                    raise AssertionError("expected RunExists")
                except forklog.RunExists as e:
                    assert e.run == id
            return
        run = self.store.init(id, config=config)
        v = Version(id, 0, [], None, [(f"{id}@v0", None)])
        if config:
            v.events.append(("config", 0, dict(config)))
        self.live[id] = v
        self.writers[id] = run
        assert (run.id, run.version, run.step) == (id, 0, 0)

    @precondition(lambda self: self.writers)
    @rule(data=st.data(), row=rows, explicit=st.booleans(), gap=st.integers(0, 3))
    def log(self, data, row, explicit, gap):
        id = data.draw(st.sampled_from(sorted(self.writers)))
        run, v = self.writers[id], self.live[id]
        step = v.next_step() + gap if explicit else None
        run.log(row, step=step) if explicit else run.log(row)
        v.events.append(("log", v.next_step() + gap if explicit else v.next_step(), dict(row)))
        assert run.step == v.next_step()

    @precondition(lambda self: any(v.last() is not None for id, v in self.live.items() if id in self.writers))
    @rule(data=st.data(), back=st.integers(0, 3))
    def log_not_increasing(self, data, back):
        id = data.draw(st.sampled_from(sorted(i for i in self.writers if self.live[i].last() is not None)))
        v = self.live[id]
        bad = max(0, v.last() - back)
        try:
            self.writers[id].log({"loss": 1.0}, step=bad)
            raise AssertionError("expected StepNotIncreasing")
        except forklog.StepNotIncreasing as e:
            assert (e.last, e.got, e.run) == (v.last(), bad, id)

    @precondition(lambda self: self.writers)
    @rule(data=st.data(), patch=st.dictionaries(st.sampled_from(["lr", "bs"]), values, min_size=1, max_size=2),
          summary=st.booleans())
    def patch(self, data, patch, summary):
        id = data.draw(st.sampled_from(sorted(self.writers)))
        run, v = self.writers[id], self.live[id]
        if summary:
            run.summary.update(patch)
        else:
            run.config.update(patch)
        v.events.append(("summary" if summary else "config", v.current_step(), dict(patch)))

    @precondition(lambda self: self.writers)
    @rule(data=st.data(), code=st.sampled_from([0, 1]))
    def finish(self, data, code):
        id = data.draw(st.sampled_from(sorted(self.writers)))
        self.writers.pop(id).finish(code)
        v = self.live[id]
        v.events.append(("finish", v.current_step(), code))

    @precondition(lambda self: self.live)
    @rule(data=st.data(), new=st.sampled_from(IDS), back=st.integers(0, 5), archived=st.booleans())
    def fork(self, data, new, back, archived):
        sources = sorted(self.live) + (sorted(self.archived) if archived else [])
        src = data.draw(st.sampled_from(sources))
        pv = self.live.get(src) or self.archived[src]
        last = pv.last()
        step = max(0, (last or 0) - back)
        spec = f"{src}?_step={step}"
        if new in self.live or new in self.deleted:
            if new in self.live:
                exc = forklog.ForkOntoItself if new == src.split("@")[0] else forklog.RunExists
                try:
                    self.store.init(new, fork_from=spec)
                    raise AssertionError("expected an error")
                except exc:
                    pass
            return
        run = self.store.init(new, fork_from=spec)
        inherited = [e for e in pv.events if e[1] <= step]
        v = Version(new, 0, inherited, step, pv.lineage[:-1] + [(pv.ref, pv.lineage[-1][1])] + [(f"{new}@v0", step)],
                    parent=pv.ref, fork_step=step)
        self.live[new] = v
        self.writers[new] = run
        assert run.step == step + 1

    @precondition(lambda self: any(i not in self.writers for i in self.live))
    @rule(data=st.data(), back=st.integers(0, 5))
    def rewind(self, data, back):
        id = data.draw(st.sampled_from(sorted(i for i in self.live if i not in self.writers)))
        old = self.live[id]
        step = max(0, (old.last() or 0) - back)
        run = self.store.init(id, resume_from=f"{id}?_step={step}")
        self.archived[old.ref] = old
        inherited = [e for e in old.events if e[1] <= step]
        lineage = old.lineage[:-1] + [(f"{id}@v{old.version + 1}", old.lineage[-1][1])]
        v = Version(id, old.version + 1, inherited, step, lineage, parent=old.parent, fork_step=old.fork_step)
        self.live[id] = v
        self.writers[id] = run
        assert (run.version, run.step) == (old.version + 1, step + 1)

    @precondition(lambda self: self.writers)
    @rule(data=st.data())
    def busy(self, data):
        id = data.draw(st.sampled_from(sorted(self.writers)))
        for call in (lambda: self.store.init(id, resume="must"), lambda: self.store.delete(id),
                     lambda: self.store.init(id, resume_from=f"{id}?_step=0")):
            try:
                call()
                raise AssertionError("expected RunBusy")
            except forklog.RunBusy as e:
                assert e.run == id

    @precondition(lambda self: any(i not in self.writers for i in self.live))
    @rule(data=st.data(), allow=st.booleans())
    def resume(self, data, allow):
        id = data.draw(st.sampled_from(sorted(i for i in self.live if i not in self.writers)))
        run = self.store.init(id, resume="allow" if allow else "must")
        v = self.live[id]
        assert (run.version, run.step) == (v.version, v.next_step())
        self.writers[id] = run

    @rule(id=st.sampled_from(IDS))
    def resume_missing(self, id):
        if id in self.live or id in self.deleted:
            return
        try:
            self.store.init(id, resume="must")
            raise AssertionError("expected RunNotFound")
        except forklog.RunNotFound as e:
            assert e.run == id

    @precondition(lambda self: any(i not in self.writers for i in self.live))
    @rule(data=st.data())
    def delete(self, data):
        id = data.draw(st.sampled_from(sorted(i for i in self.live if i not in self.writers)))
        self.store.delete(id)
        v = self.live.pop(id)
        self.deleted.add(id)
        for ref in [r for r in self.archived if r.startswith(id + "@")]:
            del self.archived[ref]

    @rule()
    def gc(self):
        self.store.gc()

    # -- invariants --------------------------------------------------------------------------------

    @invariant()
    def matches(self):
        infos = self.store.runs()
        assert [i.id for i in infos] == sorted(self.live)
        for info in infos:
            v = self.live[info.id]
            assert (info.version, info.parent, info.fork_step) == (v.version, v.parent, v.fork_step)
            assert info.state == v.state(info.id in self.writers)
            assert info.rows == len(v.history())
        for ref, v in list(self.live.items()) + list(self.archived.items()):
            got = list(self.store.history(ref))
            want = v.history()
            assert [r["_step"] for r in got] == [s for s, _ in want]
            for r, (_, m) in zip(got, want):
                assert same({k: x for k, x in r.items() if k != "_timestamp"}, {"_step": r["_step"], **m})
            assert same(self.store.summary(ref), v.summary())
            assert same(self.store.config(ref), v.config())
            assert [(e.run, e.fork_step) for e in self.store.lineage(ref)] == v.lineage
        for id in self.deleted - set(self.live):
            try:
                self.store.info(id)
                raise AssertionError("a deleted run is still readable")
            except forklog.RunNotFound:
                pass


StoreMachine.TestCase.settings = settings(
    max_examples=40, stateful_step_count=25, deadline=None, suppress_health_check=list(HealthCheck)
)
TestStoreMachine = StoreMachine.TestCase
