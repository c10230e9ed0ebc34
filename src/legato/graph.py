"""A workflow's steps as a graph, read from its code: ``legato workflows graph``.

The graph is drawn without running anything: the workflow function's source is parsed
(``inspect.getsource`` and ``ast``) and each call it awaits, in source order, becomes a
node when it resolves (through the function's globals and closure, as Python would) to

- a step registered on the app (with a dashed edge to an ``undo: <compensation>`` node
  when the step has a compensation),
- a Legato wait (``legato.sleep``, ``sleep_until``, ``wait_for_signal``, ``human_task``,
  ``request``, ``child``), ``legato.publish``, or ``legato.continue_as_new``,
- ``asyncio.gather(...)``: a fork, one branch per awaitable, joined again,
- an ``async def`` helper defined in the workflow's own module that awaits any of
  these: it is drawn inline, as a subgraph named after the helper (recursion stops at
  a helper already being drawn).

``if``/``elif``/``else`` and ``match`` are decisions, ``for`` and ``while`` loops with a
back edge to their head, ``try``/``except`` an edge from each step or wait in the
``try`` to its handler, labelled with the exception caught; ``return`` leads to the
end, ``raise`` to a node of its own. Control flow that contains none of these calls is
left out, and so is every call the analysis cannot resolve (a step held in a local
variable, a method of some object): the graph shows what the code says, not every
path Python could take.

>>> graph = workflow_graph(app, "purchase_course")  # doctest: +SKIP
>>> print(legato.graphchart.to_mermaid(graph))  # doctest: +SKIP
"""

from __future__ import annotations

import ast
import asyncio
import enum
import inspect
import textwrap
from collections import ChainMap
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import FunctionType, ModuleType
from typing import TYPE_CHECKING, Any

from legato.engine import context
from legato.engine.registry import Registry, Step, Workflow
from legato.errors import DefinitionError

if TYPE_CHECKING:
    from legato.app import App


class NodeKind(enum.StrEnum):
    """What a node of a workflow graph stands for."""

    START = "start"
    END = "end"
    STEP = "step"
    COMPENSATION = "compensation"
    SLEEP = "sleep"
    SIGNAL = "signal"
    HUMAN_TASK = "human_task"
    REQUEST = "request"
    CHILD = "child"
    PUBLISH = "publish"
    CONTINUE_AS_NEW = "continue_as_new"
    DECISION = "decision"
    LOOP = "loop"
    FORK = "fork"
    JOIN = "join"
    RAISE = "raise"


class EdgeKind(enum.StrEnum):
    """How control passes along an edge."""

    FLOW = "flow"
    LOOP = "loop"
    """Back to a loop's head, for its next round."""
    ERROR = "error"
    """From a call in a ``try`` to the handler of the exception in the edge's label."""
    COMPENSATION = "compensation"
    """From a step to its undo, which runs if the workflow fails after the step."""


WAITS = frozenset({NodeKind.SLEEP, NodeKind.SIGNAL, NodeKind.HUMAN_TASK, NodeKind.REQUEST})
# The calls that can fail and so lead to an ``except`` around them.
_CALLS = WAITS | {NodeKind.STEP, NodeKind.CHILD, NodeKind.PUBLISH}


@dataclass(frozen=True, slots=True)
class Node:
    """One thing the workflow does or decides; ``group`` is the helper subgraph it is in."""

    id: str
    kind: NodeKind
    label: str
    group: str | None = None


@dataclass(frozen=True, slots=True)
class Edge:
    """Control passing from node ``source`` to node ``target``."""

    source: str
    target: str
    kind: EdgeKind = EdgeKind.FLOW
    label: str = ""


@dataclass(frozen=True, slots=True)
class Group:
    """A helper function drawn inline: a subgraph, inside ``parent`` when that is set."""

    id: str
    label: str
    parent: str | None = None


@dataclass(frozen=True, slots=True)
class WorkflowGraph:
    """The nodes (in source order), edges and helper subgraphs of one workflow."""

    workflow: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    groups: tuple[Group, ...] = ()


def workflow_graph(app: App, name: str) -> WorkflowGraph:
    """The graph of ``app``'s workflow ``name``, read from the workflow function's source.

    Raises ``legato.errors.UnknownWorkflow`` for a name the app does not register, and
    ``DefinitionError`` when the function's source cannot be read or parsed.
    """
    workflow = app.registry.workflow(name)
    tree = _function_tree(workflow.fn)
    if tree is None:
        raise DefinitionError(
            f"cannot read the source of workflow {workflow.name!r}: a graph is drawn from "
            "the code of a workflow defined in a Python file"
        )
    return _Builder(app.registry).build(workflow, tree)


# -- Reading code --------------------------------------------------------------------------

_FunctionDef = ast.FunctionDef | ast.AsyncFunctionDef
_NESTED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_LABEL = 60


def _function_tree(fn: Callable[..., Any]) -> _FunctionDef | None:
    """The ``def`` of ``fn``, parsed; None when its source is not to be had."""
    try:
        source = textwrap.dedent(inspect.getsource(fn))
        module = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        return None
    first = module.body[0] if module.body else None
    return first if isinstance(first, _FunctionDef) else None


def _cut(text: str) -> str:
    """``text`` on one line, cut to a label's length."""
    text = " ".join(text.split())
    return text if len(text) <= _LABEL else text[: _LABEL - 1] + "…"


def _code(expr: ast.AST) -> str:
    """``expr`` as source text on one line, cut to a label's length."""
    return _cut(ast.unparse(expr))


def _text(expr: ast.expr | None) -> str:
    """A string constant as its value, any other expression as its code."""
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return expr.value
    return "?" if expr is None else _code(expr)


def _argument(call: ast.Call, keyword: str, index: int | None = None) -> ast.expr | None:
    """The expression passed as ``keyword=``, or as positional ``index`` (before any
    ``*args``, past which positions are unknown)."""
    given = next((k.value for k in call.keywords if k.arg == keyword), None)
    if given is not None or index is None:
        return given
    for position, argument in enumerate(call.args):
        if isinstance(argument, ast.Starred):
            return None
        if position == index:
            return argument
    return None


def _branches(call: ast.Call) -> list[tuple[str, ast.Call]]:
    """The calls ``asyncio.gather(a(), *(b(x) for x in xs))`` runs, each with a label
    (``for x in xs`` for a generator)."""
    found: list[tuple[str, ast.Call]] = []
    for argument in call.args:
        label, branch = "", argument
        if isinstance(argument, ast.Starred) and isinstance(
            argument.value, ast.GeneratorExp | ast.ListComp
        ):
            loops = argument.value.generators
            label = _cut(
                " ".join(f"for {ast.unparse(g.target)} in {ast.unparse(g.iter)}" for g in loops)
            )
            branch = argument.value.elt
        if isinstance(branch, ast.Call):
            found.append((label, branch))
    return found


def _exception_label(expr: ast.expr | None) -> str:
    """``except legato.errors.WaitTimeout`` reads as ``WaitTimeout``; a bare ``except`` as
    ``any exception``."""
    if expr is None:
        return "any exception"
    if isinstance(expr, ast.Tuple):
        return ", ".join(_exception_label(e) for e in expr.elts)
    if isinstance(expr, ast.Attribute):
        return expr.attr
    return _code(expr)


@dataclass(frozen=True, slots=True)
class _Scope:
    """The names a function's code sees: closure cells, then its module's globals.

    Names the function assigns itself (its arguments and locals) are never resolved: they
    could hold anything at run time.
    """

    names: Mapping[str, object]
    local: frozenset[str]
    module: str

    @classmethod
    def of(cls, fn: FunctionType) -> _Scope:
        code = fn.__code__
        closure: dict[str, object] = {}
        for name, cell in zip(code.co_freevars, fn.__closure__ or (), strict=False):
            try:
                closure[name] = cell.cell_contents
            except ValueError:  # a cell not filled yet: defined later in the outer function
                continue
        return cls(ChainMap(closure, fn.__globals__), frozenset(code.co_varnames), fn.__module__)

    def resolve(self, expr: ast.expr) -> object | None:
        """What a name or a dotted path (``legato.sleep``) stands for, or None."""
        if isinstance(expr, ast.Name):
            return None if expr.id in self.local else self.names.get(expr.id)
        if isinstance(expr, ast.Attribute):
            base = self.resolve(expr.value)
            # Only modules: an attribute of anything else may be a property that runs code.
            if isinstance(base, ModuleType):
                return getattr(base, expr.attr, None)
        return None


# Open ends of the graph drawn so far: (node id, kind and label of the edge leaving it).
_Ends = list[tuple[str, EdgeKind, str]]


@dataclass(slots=True)
class _Loop:
    head: str
    breaks: _Ends = field(default_factory=list)


@dataclass(slots=True)
class _Frame:
    """What the builder tracks per function drawn: its names, returns and loops."""

    scope: _Scope
    group: str | None
    returns: _Ends = field(default_factory=list)
    loops: list[_Loop] = field(default_factory=list)


class _Builder:
    """Walks a workflow's statements, adding nodes and edges in source order."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.nodes: list[Node] = []
        self.edges: list[Edge] = []
        self.groups: list[Group] = []
        self.frame: _Frame
        self.drawing: list[object] = []  # the functions being drawn, outermost first

    def build(self, workflow: Workflow[..., Any], tree: _FunctionDef) -> WorkflowGraph:
        if not isinstance(workflow.fn, FunctionType):  # pragma: no cover - always a def
            raise DefinitionError(f"workflow {workflow.name!r} is not a Python function")
        self.frame = _Frame(_Scope.of(workflow.fn), None)
        self.drawing.append(workflow.fn)
        start = self.add(NodeKind.START, workflow.name, [])
        ends = self.block(tree.body, [(start, EdgeKind.FLOW, "")]) + self.frame.returns
        if ends:
            self.add(NodeKind.END, "end", ends)
        return WorkflowGraph(
            workflow.name, tuple(self.nodes), tuple(self.edges), tuple(self.groups)
        )

    def add(self, kind: NodeKind, label: str, ends: _Ends) -> str:
        node_id = f"n{len(self.nodes) + 1}"
        self.nodes.append(Node(node_id, kind, label, self.frame.group))
        self.connect(ends, node_id)
        return node_id

    def connect(self, ends: _Ends, target: str, kind: EdgeKind | None = None) -> None:
        for source, edge_kind, label in ends:
            self.edges.append(Edge(source, target, kind or edge_kind, label))

    # -- statements ------------------------------------------------------------------------

    def block(self, body: Iterable[ast.stmt], ends: _Ends) -> _Ends:
        for statement in body:
            ends = self.statement(statement, ends)
            if not ends:  # returned, raised, broke out: what follows is not reached from here
                break
        return ends

    def statement(self, node: ast.stmt, ends: _Ends) -> _Ends:
        if isinstance(node, ast.If):
            return self.branches(node.test, [(node.body, "yes"), (node.orelse, "no")], ends)
        if isinstance(node, ast.For | ast.AsyncFor | ast.While):
            return self.loop(node, ends)
        if isinstance(node, ast.Try | ast.TryStar):
            return self.try_(node, ends)
        if isinstance(node, ast.Match):
            return self.match(node, ends)
        if isinstance(node, ast.With | ast.AsyncWith):
            for item in node.items:
                ends = self.expression(item.context_expr, ends)
            return self.block(node.body, ends)
        if isinstance(node, ast.Return):
            ends = self.expression(node.value, ends) if node.value else ends
            self.frame.returns.extend(ends)
            return []
        if isinstance(node, ast.Raise):
            ends = self.expression(node.exc, ends) if node.exc else ends
            raised = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            label = f"raise {_code(raised)}" if raised else "re-raise"
            self.add(NodeKind.RAISE, label, ends)
            return []
        if isinstance(node, ast.Break) and self.frame.loops:
            self.frame.loops[-1].breaks.extend(ends)
            return []
        if isinstance(node, ast.Continue) and self.frame.loops:
            self.connect(ends, self.frame.loops[-1].head, EdgeKind.LOOP)
            return []
        if isinstance(node, _NESTED):
            return ends
        return self.expression(node, ends)

    def branches(
        self, test: ast.expr, arms: list[tuple[list[ast.stmt], str]], ends: _Ends
    ) -> _Ends:
        """An ``if``: a decision when an arm does something drawn, else nothing."""
        ends = self.expression(test, ends)
        if not any(self.matters(body) for body, _ in arms):
            return ends
        decision = self.add(NodeKind.DECISION, _code(test), ends)
        out: _Ends = []
        for body, label in arms:
            out += self.block(body, [(decision, EdgeKind.FLOW, label)])
        return out

    def loop(self, node: ast.For | ast.AsyncFor | ast.While, ends: _Ends) -> _Ends:
        if isinstance(node, ast.While):
            ends = self.expression(node.test, ends)
            label, go, done = _cut(f"while {ast.unparse(node.test)}"), "yes", "no"
            forever = isinstance(node.test, ast.Constant) and bool(node.test.value)
        else:
            ends = self.expression(node.iter, ends)
            code = f"for {ast.unparse(node.target)} in {ast.unparse(node.iter)}"
            label, go, done = _cut(code), "each", "done"
            forever = False
        if not self.matters(node.body):
            return ends
        head = self.add(NodeKind.LOOP, label, ends)
        state = _Loop(head)
        self.frame.loops.append(state)
        try:
            rounds = self.block(node.body, [(head, EdgeKind.FLOW, go)])
        finally:
            self.frame.loops.pop()
        self.connect(rounds, head, EdgeKind.LOOP)
        exits: _Ends = [] if forever else [(head, EdgeKind.FLOW, done)]
        return self.block(node.orelse, exits) + state.breaks

    def try_(self, node: ast.Try | ast.TryStar, ends: _Ends) -> _Ends:
        first = len(self.nodes)
        out = self.block(node.body, ends)
        raisers = [n.id for n in self.nodes[first:] if n.kind in _CALLS]
        out = self.block(node.orelse, out)
        for handler in node.handlers:
            if not raisers and not self.matters(handler.body):
                continue
            caught = _exception_label(handler.type)
            sources = raisers or [source for source, _, _ in ends]
            out += self.block(handler.body, [(s, EdgeKind.ERROR, caught) for s in sources])
        return self.block(node.finalbody, out) if node.finalbody else out

    def match(self, node: ast.Match, ends: _Ends) -> _Ends:
        arms = [(case.body, _code(case.pattern)) for case in node.cases]
        ends = self.expression(node.subject, ends)
        if not any(self.matters(body) for body, _ in arms):
            return ends
        decision = self.add(NodeKind.DECISION, f"match {_code(node.subject)}", ends)
        out: _Ends = []
        for case, (body, label) in zip(node.cases, arms, strict=True):
            guard = f" if {_code(case.guard)}" if case.guard else ""
            out += self.block(body, [(decision, EdgeKind.FLOW, label + guard)])
        wildcard = any(
            isinstance(c.pattern, ast.MatchAs) and c.pattern.pattern is None and not c.guard
            for c in node.cases
        )
        return out if wildcard else [*out, (decision, EdgeKind.FLOW, "no match")]

    # -- expressions -----------------------------------------------------------------------

    def expression(self, node: ast.AST, ends: _Ends) -> _Ends:
        """Draw the awaited calls in ``node`` in the order Python evaluates them."""
        if isinstance(node, _NESTED):
            return ends
        if isinstance(node, ast.Await) and isinstance(node.value, ast.Call):
            call = node.value
            for argument in [*call.args, *(k.value for k in call.keywords)]:
                ends = self.expression(argument, ends)
            return self.awaited(call, ends)
        if isinstance(node, ast.Call) and self.frame.scope.resolve(node.func) is (
            context.continue_as_new
        ):
            for argument in node.args:
                ends = self.expression(argument, ends)
            self.add(NodeKind.CONTINUE_AS_NEW, "continue as new", ends)
            return []
        for child in ast.iter_child_nodes(node):
            ends = self.expression(child, ends)
        return ends

    def awaited(self, call: ast.Call, ends: _Ends) -> _Ends:
        """Draw ``await call``: a step, a Legato call, a fork or a helper; else nothing."""
        target = self.frame.scope.resolve(call.func)
        if target is None:
            return ends
        if isinstance(target, Step) and self.registry.steps.get(target.name) is target:
            return self.step(target, ends)
        legato_call = self.legato_call(target, call)
        if legato_call is not None:
            return [(self.add(*legato_call, ends), EdgeKind.FLOW, "")]
        if target is asyncio.gather:
            return self.fork(call, ends)
        helper = self.helper(target)
        return ends if helper is None else self.inline(*helper, ends)

    def step(self, step: Step[..., Any], ends: _Ends) -> _Ends:
        node = self.add(NodeKind.STEP, step.name, ends)
        if step.compensation is not None:
            undo = getattr(step.compensation.fn, "__name__", step.compensation.name)
            self.add(NodeKind.COMPENSATION, f"undo: {undo}", [(node, EdgeKind.COMPENSATION, "")])
        return [(node, EdgeKind.FLOW, "")]

    def legato_call(self, target: object, call: ast.Call) -> tuple[NodeKind, str] | None:
        """The kind and label of a call to one of Legato's workflow calls."""
        if target is context.sleep:
            return NodeKind.SLEEP, f"sleep {_text(_argument(call, 'duration', 0))}"
        if target is context.sleep_until:
            return NodeKind.SLEEP, f"sleep until {_text(_argument(call, 'when', 0))}"
        if target is context.wait_for_signal:
            return NodeKind.SIGNAL, f"wait for signal {_text(_argument(call, 'name', 0))}"
        if target is context.human_task:
            assignee = _argument(call, "assignee")
            who = f" for {_text(assignee)}" if assignee is not None else ""
            return NodeKind.HUMAN_TASK, f"human task {_text(_argument(call, 'name', 0))}{who}"
        if target is context.request:
            what, reply = _argument(call, "type", 0), _argument(call, "reply")
            return NodeKind.REQUEST, f"request {_text(what)}, await {_text(reply)}"
        if target is context.publish:
            return NodeKind.PUBLISH, f"publish {_text(_argument(call, 'type', 0))}"
        if target is context.child:
            workflow = _argument(call, "workflow", 0)
            named = self.frame.scope.resolve(workflow) if workflow is not None else None
            name = named.name if isinstance(named, Workflow) else _text(workflow)
            return NodeKind.CHILD, f"child workflow {name}"
        return None

    def fork(self, call: ast.Call, ends: _Ends) -> _Ends:
        """``asyncio.gather(a(), b(), *(c(x) for x in xs))``: one branch per awaitable."""
        first_node, first_edge = len(self.nodes), len(self.edges)
        fork = self.add(NodeKind.FORK, "in parallel", ends)
        joined: _Ends = []
        for label, branch in _branches(call):
            start: _Ends = [(fork, EdgeKind.FLOW, label)]
            out = self.awaited(branch, start)
            if out != start:
                joined += out
        if not joined:  # nothing drawn in any branch: no fork either
            del self.nodes[first_node:], self.edges[first_edge:]
            return ends
        return [(self.add(NodeKind.JOIN, "all done", joined), EdgeKind.FLOW, "")]

    def helper(self, target: object) -> tuple[FunctionType, _FunctionDef] | None:
        """The parsed ``def`` of an ``async def`` helper of the workflow's module, if it
        awaits anything drawn and is not being drawn already."""
        if not (
            isinstance(target, FunctionType)
            and inspect.iscoroutinefunction(target)
            and target.__module__ == self.frame.scope.module
            and target not in self.drawing
        ):
            return None
        tree = _function_tree(target)
        if tree is None:
            return None
        outer = self.frame
        self.frame = _Frame(_Scope.of(target), outer.group)
        self.drawing.append(target)
        try:
            return (target, tree) if self.matters(tree.body) else None
        finally:
            self.drawing.pop()
            self.frame = outer

    def inline(self, fn: FunctionType, tree: _FunctionDef, ends: _Ends) -> _Ends:
        group = Group(f"g{len(self.groups) + 1}", fn.__name__, self.frame.group)
        self.groups.append(group)
        outer = self.frame
        self.frame = _Frame(_Scope.of(fn), group.id)
        self.drawing.append(fn)
        try:
            return self.block(tree.body, ends) + self.frame.returns
        finally:
            self.drawing.pop()
            self.frame = outer

    def matters(self, body: Iterable[ast.stmt]) -> bool:
        """Whether drawing ``body`` would draw anything: a resolved call, a return, a
        raise, or a ``break``/``continue`` of the loop being drawn."""
        # (node, whether it sits in a loop of its own inside body: its break is that loop's)
        stack: list[tuple[ast.AST, bool]] = [(statement, False) for statement in body]
        while stack:
            node, inner = stack.pop()
            if isinstance(node, _NESTED):
                continue
            if isinstance(node, ast.Return | ast.Raise):
                return True
            if isinstance(node, ast.Break | ast.Continue) and not inner and self.frame.loops:
                return True
            if isinstance(node, ast.Await) and isinstance(node.value, ast.Call):
                if self.is_drawn(node.value):
                    return True
            elif (
                isinstance(node, ast.Call)
                and self.frame.scope.resolve(node.func) is context.continue_as_new
            ):
                return True
            inner = inner or isinstance(node, ast.For | ast.AsyncFor | ast.While)
            stack.extend((child, inner) for child in ast.iter_child_nodes(node))
        return False

    def is_drawn(self, call: ast.Call) -> bool:
        target = self.frame.scope.resolve(call.func)
        if target is None:
            return False
        if isinstance(target, Step):
            return self.registry.steps.get(target.name) is target
        if self.legato_call(target, call) is not None:
            return True
        if target is asyncio.gather:
            return any(self.is_drawn(branch) for _, branch in _branches(call))
        return self.helper(target) is not None
