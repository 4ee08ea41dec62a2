# The captive portal's DNS, sans-IO: every A query is answered with the soft-AP's
# address, so a phone that joins the AP finds its "internet" there and opens the
# portal. Other types get an empty answer (the name exists, no such record: the phone
# falls back to A); what is not a standard query gets an error or nothing. One
# question per query (RFC 1035 4.1), no name compression in a question.
from micropython import const

_HEADER = const(12)
_A = const(1)
_IN = const(1)
_TTL = const(60)  # seconds: nothing should outlive the pairing AP for long
_FORMERR = const(1)
_NOTIMP = const(4)


def answer(query, ip):
    """The reply to one datagram (bytes) with `ip` (4 bytes) for A queries, or None
    when the datagram deserves no reply (too short for a header, or a reply itself)."""
    if len(query) < _HEADER or query[2] & 0x80:
        return None
    if query[2] & 0x78:  # an opcode other than QUERY
        return _header(query, _NOTIMP, 0, 0)
    end = _question_end(query)
    if end < 0 or query[4] != 0 or query[5] != 1:
        return _header(query, _FORMERR, 0, 0)
    question = query[_HEADER:end]
    if query[end - 4] == 0 and query[end - 3] == _A and query[end - 2] == 0 and query[end - 1] == _IN:
        # the answer names the question by a pointer to offset 12 (0xC00C)
        record = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00" + bytes((_TTL, 0, 4)) + bytes(ip)
        return _header(query, 0, 1, 1) + question + record
    return _header(query, 0, 1, 0) + question


def _header(query, rcode, qdcount, ancount):
    # our id, QR and AA set, the query's opcode and RD kept, no recursion available
    flags = 0x84 | query[2] & 0x79
    return bytes((query[0], query[1], flags, rcode, 0, qdcount, 0, ancount, 0, 0, 0, 0))


def _question_end(query):
    """The index just past the first question's QTYPE and QCLASS, or -1."""
    i = _HEADER
    n = len(query)
    while True:
        if i >= n:
            return -1
        length = query[i]
        if length == 0:
            break
        if length > 63 or i - _HEADER + length > 253:  # a pointer, or a name over 255 bytes
            return -1
        i += 1 + length
    i += 5  # the root label, QTYPE, QCLASS
    return i if i <= n else -1
