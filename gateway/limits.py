"""Bounded work per request: who the client is (behind trusted proxies), how often an anonymous client may ask, how
big a GraphQL document may be, and what a query may cost.

- **Client address**: the socket's peer, unless that peer is one of PARVIS_TRUSTED_PROXIES (a reverse proxy, a load
  balancer): then the right-most address of X-Forwarded-For that is not a trusted proxy. Trusting the header from
  anybody would let any client choose its address; ignoring it behind a proxy puts every citizen behind one address.
- **Rate limit**: a token bucket per client address for anonymous requests (no Authorization header), per gateway
  process (several replicas each allow as much: the proxy in front is where a global limit belongs).
- **Document size**: a GraphQL document (the query text) of PARVIS_MAX_DOCUMENT_BYTES at most; data goes in the
  variables, which the 1 MiB body cap bounds.
- **Cost**: `QueryCostLimit`, a validation rule: the objects a query may return, each list counted at its `first`
  (or `limit`) argument (at its maximum when given by a variable), as GitHub's API counts nodes.
"""
from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict

from graphql import (FieldNode, FragmentDefinitionNode, FragmentSpreadNode, GraphQLError, GraphQLList,
                     GraphQLNonNull, GraphQLObjectType, InlineFragmentNode, IntValueNode, OperationDefinitionNode,
                     ValidationRule, VariableNode)

PAGE_ARGUMENTS = ("first", "limit")
ASSUMED_PAGE = 500  # a page size given by a variable: counted at the largest any contract allows
ASSUMED_LIST = 5  # a list without a page argument (a form's questions, an event's occurrences…): a typical size


def parse_networks(raw: str) -> tuple:
    """PARVIS_TRUSTED_PROXIES: addresses or CIDR networks, comma-separated."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in raw.split(",") if part.strip())


def client_address(scope, trusted: tuple) -> str | None:
    """The client's address for limits and logs (see the module's note on proxies)."""
    peer = (scope.get("client") or (None,))[0]
    if not trusted or peer is None or not _trusted(peer, trusted):
        return peer
    forwarded = b""
    for name, value in scope.get("headers") or ():
        if name == b"x-forwarded-for":
            forwarded = value if not forwarded else forwarded + b"," + value
    hops = [h.strip() for h in forwarded.decode("latin-1").split(",") if h.strip()]
    for hop in reversed(hops):  # the right-most hops were added by our own proxies
        if not _trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer


def _trusted(address: str, trusted: tuple) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in trusted)


class RateLimiter:
    """Token buckets by key: `rate` requests a second on average, bursts of `burst`; the least recently seen keys
    are forgotten beyond `keys` (an attacker with many addresses cannot grow the memory)."""

    def __init__(self, rate: float, burst: float, keys: int = 10_000):
        self.rate, self.burst, self.keys = rate, burst, keys
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def allow(self, key: str, now: float | None = None) -> float:
        """0 when the request may go on, else the seconds to wait before the next one will."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        tokens, at = self.buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.rate
        self.buckets[key] = (tokens, now)
        while len(self.buckets) > self.keys:
            self.buckets.popitem(last=False)
        return wait


def cost_rule(max_cost: int) -> type[ValidationRule]:
    """A validation rule refusing operations that may return more than `max_cost` objects."""

    class QueryCostLimit(ValidationRule):
        def enter_document(self, node, *_):
            fragments = {d.name.value: d for d in node.definitions if isinstance(d, FragmentDefinitionNode)}
            schema = self.context.schema
            roots = {"query": schema.query_type, "mutation": schema.mutation_type,
                     "subscription": schema.subscription_type}
            for definition in node.definitions:
                if not isinstance(definition, OperationDefinitionNode):
                    continue
                root = roots.get(definition.operation.value)
                if root is None:
                    continue
                cost = _selection_cost(root, definition.selection_set, fragments, set())
                if cost > max_cost:
                    self.report_error(GraphQLError(
                        f"Requête trop coûteuse : elle peut renvoyer {cost} objets, {max_cost} au plus (réduisez "
                        "`first`, les alias ou la profondeur).", definition, extensions={"code": "QUERY_TOO_COSTLY"}))

    return QueryCostLimit


def _selection_cost(parent, selection_set, fragments: dict, visiting: set, page: int | None = None) -> int:
    """The objects a selection may return. `page`: the page size of the connection this selection is in (its
    `edges` and `nodes` lists have that many items)."""
    total = 0
    for sel in selection_set.selections if selection_set else ():
        if isinstance(sel, FieldNode):
            field = parent.fields.get(sel.name.value) if hasattr(parent, "fields") else None
            if field is None:
                continue  # __typename, or an unknown field: the other rules speak of it
            inner, is_list = field.type, False
            while isinstance(inner, (GraphQLNonNull, GraphQLList)):
                is_list = is_list or isinstance(inner, GraphQLList)
                inner = inner.of_type
            if not isinstance(inner, GraphQLObjectType):
                continue  # a scalar or an enum: no object
            own = _page_size(sel)
            if is_list:
                size = own or page or ASSUMED_LIST
                total += size * (1 + _selection_cost(inner, sel.selection_set, fragments, visiting))
            else:  # one object; a connection (`events(first: 500)`) passes its page size to its lists
                total += 1 + _selection_cost(inner, sel.selection_set, fragments, visiting, own)
        elif isinstance(sel, InlineFragmentNode):
            total += _selection_cost(parent, sel.selection_set, fragments, visiting, page)
        elif isinstance(sel, FragmentSpreadNode) and sel.name.value not in visiting:
            fragment = fragments.get(sel.name.value)
            if fragment is not None:
                total += _selection_cost(parent, fragment.selection_set, fragments, visiting | {sel.name.value}, page)
    return total


def _page_size(field: FieldNode) -> int | None:
    for argument in field.arguments or ():
        if argument.name.value in PAGE_ARGUMENTS:
            if isinstance(argument.value, IntValueNode):
                return max(1, int(argument.value.value))
            if isinstance(argument.value, VariableNode):
                return ASSUMED_PAGE
    return None
