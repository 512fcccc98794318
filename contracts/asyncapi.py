"""Generates contracts/asyncapi.yaml (AsyncAPI 3.0) from the pydantic contracts: never edit it by hand."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter

from contracts.base import Envelope, event_contracts, rpc_contracts

PATH = Path(__file__).with_name("asyncapi.yaml")


def _schema(tp: Any, defs: dict) -> dict:
    schema = TypeAdapter(tp).json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        defs[name] = sub
    return schema


def _key(name: str) -> str:
    return name.replace(".", "_")


def document() -> dict:
    defs: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    envelope = _schema(Envelope, defs)

    for event_type, contract in sorted(event_contracts().items()):
        service = event_type.split(".", 1)[0]
        data = _schema(contract, defs)
        payload = {**envelope, "title": f"{contract.__name__}Envelope"}
        payload["properties"] = {**envelope["properties"], "data": data,
                                 "type": {"const": event_type, "type": "string"},
                                 "version": {"const": contract.version, "type": "integer"}}
        key = _key(event_type)
        messages[key] = {"name": event_type, "title": contract.__name__, "summary": contract.summary,
                         "contentType": "application/json", "payload": payload}
        channels[key] = {
            "address": event_type,
            "description": f"Routing key {event_type} on the topic exchange {service}.events",
            "messages": {key: {"$ref": f"#/components/messages/{key}"}},
            "bindings": {"amqp": {"is": "routingKey", "exchange": {"name": f"{service}.events", "type": "topic",
                                                                   "durable": True, "autoDelete": False, "vhost": "/"},
                                  "bindingVersion": "0.3.0"}},
        }
        operations[f"publish_{key}"] = {"action": "send", "channel": {"$ref": f"#/channels/{key}"},
                                         "summary": f"{service} publishes {event_type} through its outbox",
                                         "messages": [{"$ref": f"#/channels/{key}/messages/{key}"}]}

    for name, spec in sorted(rpc_contracts().items()):
        key = _key(name)
        req, rep = f"{key}_request", f"{key}_reply"
        messages[req] = {"name": f"{name} request", "contentType": "application/json", "summary": spec.summary,
                         "payload": {"type": "object", "required": ["args", "kwargs"], "properties": {
                             "args": {"type": "array", "maxItems": 0}, "kwargs": _schema(spec.request, defs)}}}
        messages[rep] = {"name": f"{name} reply", "contentType": "application/json",
                         "payload": {"type": "object", "properties": {
                             "result": _schema(spec.reply, defs),
                             "error": {"anyOf": [{"type": "null"}, {"$ref": "#/components/schemas/RpcError"}]}}}}
        channels[key] = {
            "address": name,
            "description": f"nameko RPC: routing key {name} on the topic exchange nameko-rpc",
            "messages": {"request": {"$ref": f"#/components/messages/{req}"}},
            "bindings": {"amqp": {"is": "routingKey", "exchange": {"name": "nameko-rpc", "type": "topic",
                                                                   "durable": True, "autoDelete": False, "vhost": "/"},
                                  "bindingVersion": "0.3.0"}},
        }
        channels[f"{key}_reply"] = {"address": None, "description": "The caller's reply queue, named in reply_to",
                                    "messages": {"reply": {"$ref": f"#/components/messages/{rep}"}}}
        operations[f"call_{key}"] = {
            "action": "send", "channel": {"$ref": f"#/channels/{key}"}, "summary": spec.summary,
            "messages": [{"$ref": f"#/channels/{key}/messages/request"}],
            "reply": {"channel": {"$ref": f"#/channels/{key}_reply"}, "address": {"location": "$message.header#/reply_to"},
                      "messages": [{"$ref": f"#/channels/{key}_reply/messages/reply"}]},
        }

    defs["RpcError"] = {"type": "object", "description": "A service's exception, as nameko serialises it",
                        "properties": {"exc_type": {"type": "string"}, "exc_path": {"type": "string"},
                                       "exc_args": {"type": "array"}, "value": {"type": "string"}}}
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "Parvis bus", "version": "0.1.0",
                 "description": "Events and RPC between the Parvis services over RabbitMQ (nameko). Generated "
                                "from contracts/ by `parvis schema`; CI fails when this file is stale."},
        "defaultContentType": "application/json",
        "servers": {"dev": {"host": "127.0.0.1:5672", "protocol": "amqp", "protocolVersion": "0.9.1"}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": dict(sorted(defs.items()))},
    }


def render() -> str:
    return yaml.safe_dump(document(), sort_keys=False, allow_unicode=True, width=110)
