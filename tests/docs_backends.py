"""The APIs behind the documentation's recipes (``docs/recipes/``): small WSGI backends that
``tests/docs_world.py`` serves beside its emulators, each guarded by the world's token check.

=========================== ============== ===============================================
host                        path prefix    what
=========================== ============== ===============================================
api.example.com             ``/soap``      a SOAP 1.1 service, document/literal: its WSDL at
                                           ``GET /soap?wsdl``, ``GetLoanBalance(loanId)`` at
                                           ``POST /soap`` (zeep)
api.example.com             ``/graphql``   GraphQL over HTTP POST (graphql-core), the schema
                                           ``Query { loans, loan(id) }`` (gql)
api.example.com             ``/v1/``       OpenAI-style ``GET /v1/models`` and
                                           ``GET /v1/models/{id}`` (the openai SDK)
example.my.salesforce.com   ``/services/   Salesforce REST: ``vNN.N/query/``,
                            data/``        ``vNN.N/queryAll/`` and ``vNN.N/sobjects/T/ID``
                                           (simple-salesforce)
=========================== ============== ===============================================

Every request, the WSDL's included, is guarded: it must carry a token of its host's token
endpoint (``auth.example.com``'s for api.example.com, the Salesforce preset's for
example.my.salesforce.com), else the app answers the world's refusal as it is (401). No
answer echoes a request header: a token never appears in an answer.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

__all__ = ["Guard", "WSGIApp", "routes"]

WSGIApp = Callable[..., Iterable[bytes]]
Guard = Callable[[dict], "tuple[str, list[tuple[str, str]], bytes] | None"]
Answer = tuple[str, list[tuple[str, str]], bytes]

#: The loans every backend knows: id -> (balance, currency).
LOANS: dict[str, tuple[str, str]] = {
    "L-1001": ("1520.75", "USD"),
    "L-1002": ("98000.00", "USD"),
}

#: Salesforce records by sObject type.
SALESFORCE: dict[str, list[dict[str, Any]]] = {
    "Account": [
        {"Id": "001000000000001AAA", "Name": "Acme Lending", "Industry": "Finance"},
    ],
}

#: The models of the OpenAI-style API.
MODELS: list[dict[str, Any]] = [
    {"id": "loan-risk-1", "object": "model", "created": 1767225600, "owned_by": "example"},
    {"id": "loan-risk-2", "object": "model", "created": 1772323200, "owned_by": "example"},
]

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
LOANS_NS = "urn:example:loans"

#: The WSDL of the SOAP service (document/literal wrapped, one operation).
WSDL = f"""<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://schemas.xmlsoap.org/wsdl/"
             xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
             xmlns:xsd="http://www.w3.org/2001/XMLSchema"
             xmlns:tns="{LOANS_NS}"
             targetNamespace="{LOANS_NS}" name="LoanService">
  <types>
    <xsd:schema targetNamespace="{LOANS_NS}" elementFormDefault="qualified">
      <xsd:element name="GetLoanBalance">
        <xsd:complexType>
          <xsd:sequence>
            <xsd:element name="loanId" type="xsd:string"/>
          </xsd:sequence>
        </xsd:complexType>
      </xsd:element>
      <xsd:element name="GetLoanBalanceResponse">
        <xsd:complexType>
          <xsd:sequence>
            <xsd:element name="loanId" type="xsd:string"/>
            <xsd:element name="balance" type="xsd:decimal"/>
            <xsd:element name="currency" type="xsd:string"/>
          </xsd:sequence>
        </xsd:complexType>
      </xsd:element>
    </xsd:schema>
  </types>
  <message name="GetLoanBalanceRequest">
    <part name="parameters" element="tns:GetLoanBalance"/>
  </message>
  <message name="GetLoanBalanceResponse">
    <part name="parameters" element="tns:GetLoanBalanceResponse"/>
  </message>
  <portType name="LoanPortType">
    <operation name="GetLoanBalance">
      <input message="tns:GetLoanBalanceRequest"/>
      <output message="tns:GetLoanBalanceResponse"/>
    </operation>
  </portType>
  <binding name="LoanBinding" type="tns:LoanPortType">
    <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    <operation name="GetLoanBalance">
      <soap:operation soapAction="{LOANS_NS}#GetLoanBalance"/>
      <input><soap:body use="literal"/></input>
      <output><soap:body use="literal"/></output>
    </operation>
  </binding>
  <service name="LoanService">
    <port name="LoanPort" binding="tns:LoanBinding">
      <soap:address location="https://api.example.com/soap"/>
    </port>
  </service>
</definitions>
"""

GRAPHQL_SDL = """
type Loan {
  id: ID!
  balance: Float!
  currency: String!
}

type Query {
  loans: [Loan!]!
  loan(id: ID!): Loan
}
"""


def _json(status: str, value: Any, headers: Iterable[tuple[str, str]] = ()) -> Answer:
    return status, [("Content-Type", "application/json"), *headers], json.dumps(value).encode()


def _xml(status: str, text: str) -> Answer:
    return status, [("Content-Type", "text/xml; charset=utf-8")], text.encode()


def _body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    return environ["wsgi.input"].read(length) if length > 0 else b""


def _path(environ: dict[str, Any]) -> str:
    return environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")


def _app(guard: Guard, handle: Callable[[dict[str, Any]], Answer]) -> WSGIApp:
    """A WSGI app answering ``handle(environ)`` to requests the guard lets through, and the
    guard's refusal to the others."""

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        answer = guard(environ)
        if answer is None:
            answer = handle(environ)
        status, headers, body = answer
        if not any(name.lower() == "content-length" for name, _ in headers):
            headers = [*headers, ("Content-Length", str(len(body)))]
        start_response(status, headers)
        return [body]

    return app


# SOAP -------------------------------------------------------------------------------------


def _soap_fault(code: str, message: str) -> Answer:
    return _xml("500 Internal Server Error", f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}"><soapenv:Body><soapenv:Fault>
<faultcode>soapenv:{code}</faultcode><faultstring>{message}</faultstring>
</soapenv:Fault></soapenv:Body></soapenv:Envelope>""")


def soap(environ: dict[str, Any]) -> Answer:
    method = environ.get("REQUEST_METHOD", "GET")
    if _path(environ) != "/soap":
        return _xml("404 Not Found", "<error>not found</error>")
    if method == "GET":
        if "wsdl" in parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True):
            return _xml("200 OK", WSDL)
        return _xml("404 Not Found", "<error>GET /soap?wsdl for the WSDL</error>")
    if method != "POST":
        return _xml("405 Method Not Allowed", "<error>POST a SOAP envelope</error>")
    try:
        envelope = ET.fromstring(_body(environ))  # noqa: S314 - the test's own requests
    except ET.ParseError:
        return _soap_fault("Client", "the request is not XML")
    call = envelope.find(f"{{{SOAP_ENV}}}Body/{{{LOANS_NS}}}GetLoanBalance")
    if call is None:
        return _soap_fault("Client", "unknown operation (this service has GetLoanBalance)")
    loan_id = (call.findtext(f"{{{LOANS_NS}}}loanId") or "").strip()
    if loan_id not in LOANS:
        return _soap_fault("Client", f"no loan {loan_id!r}")
    balance, currency = LOANS[loan_id]
    return _xml("200 OK", f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}"><soapenv:Body>
<tns:GetLoanBalanceResponse xmlns:tns="{LOANS_NS}"><tns:loanId>{loan_id}</tns:loanId>
<tns:balance>{balance}</tns:balance><tns:currency>{currency}</tns:currency>
</tns:GetLoanBalanceResponse></soapenv:Body></soapenv:Envelope>""")


# GraphQL ----------------------------------------------------------------------------------


def _loan(loan_id: str) -> dict[str, Any] | None:
    if loan_id not in LOANS:
        return None
    balance, currency = LOANS[loan_id]
    return {"id": loan_id, "balance": float(balance), "currency": currency}


def _graphql_root() -> dict[str, Any]:
    return {
        "loans": lambda _info: [_loan(loan_id) for loan_id in LOANS],
        "loan": lambda _info, id: _loan(id),  # the field's argument is "id"
    }


def graphql(environ: dict[str, Any]) -> Answer:
    from graphql import build_schema, graphql_sync

    if _path(environ) != "/graphql":
        return _json("404 Not Found", {"errors": [{"message": "not found"}]})
    if environ.get("REQUEST_METHOD") != "POST":
        return _json("405 Method Not Allowed", {"errors": [{"message": "POST a query"}]})
    try:
        payload = json.loads(_body(environ))
        query = payload["query"]
    except (ValueError, KeyError, TypeError):
        return _json("400 Bad Request", {"errors": [{"message": "a JSON body with query"}]})
    result = graphql_sync(build_schema(GRAPHQL_SDL), query, root_value=_graphql_root(),
                          variable_values=payload.get("variables"),
                          operation_name=payload.get("operationName"))
    return _json("200 OK", result.formatted)


# OpenAI-style API --------------------------------------------------------------------------


def _openai_error(status: str, message: str, code: str) -> Answer:
    return _json(status, {"error": {"message": message, "type": "invalid_request_error",
                                    "param": None, "code": code}})


def openai(environ: dict[str, Any]) -> Answer:
    path = _path(environ)
    if environ.get("REQUEST_METHOD") != "GET":
        return _openai_error("405 Method Not Allowed", "only GET is served here",
                             "method_not_allowed")
    if path == "/v1/models":
        return _json("200 OK", {"object": "list", "data": MODELS})
    if path.startswith("/v1/models/"):
        wanted = path.removeprefix("/v1/models/")
        for model in MODELS:
            if model["id"] == wanted:
                return _json("200 OK", model)
        return _openai_error("404 Not Found", f"The model '{wanted}' does not exist",
                             "model_not_found")
    return _openai_error("404 Not Found", f"Unknown path {path}", "not_found")


# Salesforce --------------------------------------------------------------------------------

_SOQL = re.compile(r"\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<type>\w+)"
                   r"(?:\s+LIMIT\s+(?P<limit>\d+))?\s*$", re.IGNORECASE | re.DOTALL)
_DATA = re.compile(r"/services/data/v(?P<version>\d+\.\d+)/(?P<rest>.*)")


def _salesforce_error(status: str, message: str, code: str) -> Answer:
    return _json(status, [{"message": message, "errorCode": code}])


def _record(version: str, sobject: str, record: dict[str, Any],
            fields: list[str] | None = None) -> dict[str, Any]:
    chosen = {name: record.get(name) for name in fields} if fields else dict(record)
    url = f"/services/data/v{version}/sobjects/{sobject}/{record['Id']}"
    return {"attributes": {"type": sobject, "url": url}, **chosen}


def salesforce(environ: dict[str, Any]) -> Answer:
    if environ.get("REQUEST_METHOD") != "GET":
        return _salesforce_error("405 Method Not Allowed", "only GET is served here",
                                 "METHOD_NOT_ALLOWED")
    matched = _DATA.fullmatch(_path(environ))
    if matched is None:
        return _salesforce_error("404 Not Found", "The requested resource does not exist",
                                 "NOT_FOUND")
    version, rest = matched["version"], matched["rest"]
    if rest in ("query/", "query", "queryAll/", "queryAll"):
        soql = parse_qs(environ.get("QUERY_STRING", "")).get("q", [""])[0]
        query = _SOQL.match(soql)
        if query is None:
            return _salesforce_error("400 Bad Request", "unexpected SOQL (SELECT f, ... "
                                     "FROM Type [LIMIT n] is understood)", "MALFORMED_QUERY")
        sobject = query["type"]
        if sobject not in SALESFORCE:
            return _salesforce_error("400 Bad Request",
                                     f"sObject type '{sobject}' is not supported.",
                                     "INVALID_TYPE")
        fields = [name.strip() for name in query["fields"].split(",")]
        records = SALESFORCE[sobject][: int(query["limit"])] if query["limit"] else \
            SALESFORCE[sobject]
        return _json("200 OK", {
            "totalSize": len(records), "done": True,
            "records": [_record(version, sobject, record, fields) for record in records],
        })
    parts = rest.strip("/").split("/")
    if len(parts) == 3 and parts[0] == "sobjects" and parts[1] in SALESFORCE:
        for record in SALESFORCE[parts[1]]:
            if record["Id"] == parts[2]:
                return _json("200 OK", _record(version, parts[1], record))
    return _salesforce_error("404 Not Found", "The requested resource does not exist",
                             "NOT_FOUND")


def routes(guard: Guard) -> list[tuple[str, str, WSGIApp]]:
    """(host, path prefix, WSGI app) of the recipes' APIs. An app calls guard(environ) first:
    None when the request carries a valid token of that host's token endpoint (the world's
    emulator checks it), else (status line, headers, body) of the refusal, which the app
    returns as it is."""
    return [
        ("api.example.com", "/soap", _app(guard, soap)),
        ("api.example.com", "/graphql", _app(guard, graphql)),
        ("api.example.com", "/v1/", _app(guard, openai)),
        ("example.my.salesforce.com", "/services/data/", _app(guard, salesforce)),
    ]
