# pairing.dns: the captive portal's answers, byte by byte, on CPython and on the VM.
from pairing import dns

IP = bytes((10, 10, 7, 1))


def query(name, qtype=1, qclass=1, ident=b"\x12\x34", flags=b"\x01\x00", qdcount=1, extra=b""):
    labels = b"".join(bytes((len(part),)) + part for part in name.encode().split(b".")) + b"\x00"
    head = ident + flags + bytes((0, qdcount)) + b"\x00\x00\x00\x00\x00" + (b"\x01" if extra else b"\x00")
    return head + labels + bytes((qtype >> 8, qtype & 255, qclass >> 8, qclass & 255)) + extra


def test_an_a_query_is_answered_with_the_ap_address():
    q = query("connectivitycheck.gstatic.com")
    r = dns.answer(q, IP)
    question = q[12:]
    assert r[:2] == b"\x12\x34"  # the query's id
    assert r[2:4] == b"\x85\x00"  # QR, AA, RD kept; NOERROR
    assert r[4:12] == b"\x00\x01\x00\x01\x00\x00\x00\x00"  # one question, one answer
    assert r[12:12 + len(question)] == question
    assert r[12 + len(question):] == b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + IP


def test_the_question_comes_back_as_asked():
    # 0x20 case randomisation: resolvers check the echo letter for letter
    q = query("CaPtIvE.aPpLe.CoM")
    assert dns.answer(q, IP)[12:12 + len(q) - 12] == q[12:]


def test_other_types_get_an_empty_answer():
    for qtype in (28, 65, 16, 255):  # AAAA, HTTPS, TXT, ANY
        q = query("www.msftconnecttest.com", qtype)
        r = dns.answer(q, IP)
        assert r[2:4] == b"\x85\x00" and r[4:12] == b"\x00\x01\x00\x00\x00\x00\x00\x00"
        assert r[12:] == q[12:]
    r = dns.answer(query("example.com", 1, 3), IP)  # class CHAOS
    assert r[6:8] == b"\x00\x00"


def test_an_edns_record_after_the_question_is_ignored():
    opt = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"
    q = query("detectportal.firefox.com", extra=opt)
    r = dns.answer(q, IP)
    assert r[6:8] == b"\x00\x01" and r.endswith(IP)


def test_replies_and_scraps_get_nothing():
    assert dns.answer(b"", IP) is None
    assert dns.answer(b"\x12\x34\x01", IP) is None
    reply = dns.answer(query("a.b"), IP)
    assert dns.answer(reply, IP) is None  # a reply is never answered: no loops


def test_malformed_queries_get_formerr():
    bad = [
        query("a.b")[:20],  # cut inside the question
        query("a.b")[:-2],  # no QCLASS
        query("a.b", qdcount=2),
        query("a.b", qdcount=0),
        b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01",  # a pointer
        b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01",
        b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + (b"\x3f" + b"a" * 63) * 4 + b"\x00\x00\x01\x00\x01",
    ]
    for q in bad:
        r = dns.answer(q, IP)
        assert r == b"\x12\x34\x85\x01" + b"\x00" * 8, q


def test_a_255_byte_name_is_fine():
    name = b"\x3f" + b"a" * 63
    q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + name * 3 + b"\x3d" + b"b" * 61 + b"\x00\x00\x01\x00\x01"
    assert len(q) - 12 - 4 == 255
    assert dns.answer(q, IP).endswith(IP)


def test_other_opcodes_are_not_implemented():
    q = query("a.b", flags=b"\x28\x00")  # opcode 5, UPDATE
    assert dns.answer(q, IP) == b"\x12\x34\xac\x04" + b"\x00" * 8
