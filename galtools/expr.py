"""A small, safe row-selection language over label columns (never ``eval``).

Grammar::

    expr    := or
    or      := and ('or' and)*
    and     := not ('and' not)*
    not     := 'not' not | compare
    compare := value (OP value)?          OP: == != < <= > >= (= is ==)
    value   := NUMBER | STRING | NAME | '(' expr ')' | '-' value

Names are label columns (``ids`` too); ``true``/``false`` are booleans.  A comparison of a
column with a number or string is evaluated element-wise on numpy arrays; a bare column is
true where it is non-zero.  Example: ``inc >= 45 and (inc_flg == 0 or type == "Sc")``.
"""

import re

import numpy as np

from galtools.errors import GalError

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
      | (?P<str>"[^"]*"|'[^']*')
      | (?P<op><=|>=|==|!=|<|>|=|\(|\)|-|&&|\|\|)
      | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)
_COMPARE = {"==", "!=", "<", "<=", ">", ">="}
_KEYWORDS = {"and", "or", "not", "true", "false"}


class ExprError(GalError):
    """A malformed expression or an unknown column."""


def tokenize(text):
    """[(kind, value)] for ``text``; raise ExprError at an unexpected character."""
    tokens, pos = [], 0
    text = text or ""
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ExprError(
                f"--where: unexpected {text[pos:].strip()[:10]!r} at column {pos + 1} of {text!r}"
            )
        kind = m.lastgroup
        value = m.group(kind)
        if kind == "num":
            value = float(value) if any(c in value for c in ".eE") else int(value)
        elif kind == "str":
            value = value[1:-1]
        elif kind == "op":
            value = {"=": "==", "&&": "and", "||": "or"}.get(value, value)
            if value in ("and", "or"):
                kind = "kw"
        elif kind == "name" and value.lower() in _KEYWORDS:
            kind, value = "kw", value.lower()
        tokens.append((kind, value))
        pos = m.end()
    if not tokens:
        raise ExprError("--where: empty expression")
    return tokens


class _Parser:
    def __init__(self, text):
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self):
        return self.tokens[self.i] if self.i < len(self.tokens) else (None, None)

    def take(self):
        tok = self.peek()
        self.i += 1
        return tok

    def fail(self, what):
        kind, value = self.peek()
        where = f"at {value!r}" if kind else "at the end"
        raise ExprError(f"--where: {what} {where} in {self.text!r}")

    def parse(self):
        node = self.or_()
        if self.i != len(self.tokens):
            self.fail("unexpected token")
        return node

    def or_(self):
        node = self.and_()
        while self.peek() == ("kw", "or"):
            self.take()
            node = ("or", node, self.and_())
        return node

    def and_(self):
        node = self.not_()
        while self.peek() == ("kw", "and"):
            self.take()
            node = ("and", node, self.not_())
        return node

    def not_(self):
        if self.peek() == ("kw", "not"):
            self.take()
            return ("not", self.not_())
        return self.compare()

    def compare(self):
        left = self.value()
        kind, value = self.peek()
        if kind == "op" and value in _COMPARE:
            self.take()
            right = self.value()
            if self.peek()[0] == "op" and self.peek()[1] in _COMPARE:
                self.fail("chained comparison (use 'and')")
            return ("cmp", value, left, right)
        return left

    def value(self):
        kind, value = self.take()
        if kind == "num":
            return ("const", value)
        if kind == "str":
            return ("const", value)
        if kind == "name":
            return ("col", value)
        if kind == "kw" and value in ("true", "false"):
            return ("const", value == "true")
        if (kind, value) == ("op", "-"):
            inner = self.value()
            if inner[0] == "const" and isinstance(inner[1], (int, float)):
                return ("const", -inner[1])
            return ("neg", inner)
        if (kind, value) == ("op", "("):
            node = self.or_()
            if self.take() != ("op", ")"):
                self.i -= 1
                self.fail("missing ')'")
            return node
        self.i -= 1
        self.fail("expected a number, string, column or '('")


def parse(text):
    """Parse ``text`` into a tree of tuples (raises ExprError when malformed)."""
    return _Parser(text).parse()


def columns(tree):
    """The column names an expression uses."""
    if tree[0] == "col":
        return {tree[1]}
    if tree[0] == "const":
        return set()
    out = set()
    for part in tree[1:]:
        if isinstance(part, tuple):
            out |= columns(part)
    return out


_OPS = {
    "==": np.equal,
    "!=": np.not_equal,
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
}


def _truth(value, n):
    arr = np.asarray(value)
    if arr.dtype.kind in "US":
        raise ExprError("--where: a string is not a condition (compare it with ==)")
    return np.broadcast_to(arr.astype(bool), (n,))


def _eval(tree, cols, n):
    kind = tree[0]
    if kind == "const":
        return tree[1]
    if kind == "col":
        return cols[tree[1]]
    if kind == "neg":
        return -np.asarray(_eval(tree[1], cols, n))
    if kind == "not":
        return ~_truth(_eval(tree[1], cols, n), n)
    if kind in ("and", "or"):
        a = _truth(_eval(tree[1], cols, n), n)
        b = _truth(_eval(tree[2], cols, n), n)
        return (a & b) if kind == "and" else (a | b)
    op, left, right = tree[1], _eval(tree[2], cols, n), _eval(tree[3], cols, n)
    a, b = np.asarray(left), np.asarray(right)
    if (a.dtype.kind in "US") != (b.dtype.kind in "US"):
        raise ExprError(f"--where: cannot compare text with a number ({_show(tree)})")
    return np.broadcast_to(_OPS[op](a, b), (n,))


def _show(tree):
    if tree[0] == "const":
        return repr(tree[1])
    if tree[0] == "col":
        return tree[1]
    if tree[0] == "cmp":
        return f"{_show(tree[2])} {tree[1]} {_show(tree[3])}"
    return tree[0]


def evaluate(text, columns_of, n, path="input"):
    """Boolean mask of length ``n`` where ``text`` holds.

    ``columns_of(names)`` returns {name: array} for the columns the expression uses (and
    raises a clear error for an unknown one).
    """
    tree = parse(text)
    return evaluate_tree(tree, columns_of, n, path)


def evaluate_tree(tree, columns_of, n, path="input"):
    cols = columns_of(sorted(columns(tree)))
    return np.array(_truth(_eval(tree, cols, n), n))
