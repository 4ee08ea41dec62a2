"""Property-based fuzzing of the captive portal's DNS (firmware/pairing/dns.py) under
CPython: any datagram gets None or a well-formed reply with its id, never an exception;
a real resolver's query (dnspython's) for any name gets the AP's address for A, an empty
answer for other types."""
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
from hypothesis import given
from hypothesis import strategies as st

import drive
import props

labels = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=63)
names = st.lists(labels, min_size=1, max_size=6).filter(lambda ls: sum(len(l) + 1 for l in ls) <= 254)


@props.budget(3000)
@given(st.binary(max_size=300))
def test_any_datagram(data):
    drive.dns_query(data)


@props.budget(2000)
@given(st.randoms(use_true_random=False))
def test_mutated_queries(rng):
    props.check("dns", props.fuzz_input(rng, "dns"))


@props.budget(1000)
@given(names, st.sampled_from(["A", "AAAA", "ANY", "HTTPS", "MX", "TXT"]), st.booleans())
def test_a_resolver_gets_the_ap(labels, rdtype, edns):
    query = dns.message.make_query(dns.name.from_text(".".join(labels) + "."), rdtype, use_edns=0 if edns else None)
    wire = query.to_wire()
    reply = dns.message.from_wire(drive.dns_query(wire), ignore_trailing=False)
    assert reply.id == query.id and reply.flags & dns.flags.QR and reply.rcode() == dns.rcode.NOERROR
    assert reply.question == query.question
    if rdtype == "A":
        assert [rr.address for rrset in reply.answer for rr in rrset] == ["10.10.7.1"]
    else:
        assert reply.answer == []
