import PeatDiscovery
import PeatFuzzSupport

/// `DNSMessage.decode(_:)` on one datagram, then what mDNS discovery does with a decoded one:
/// `MDNSCache.absorb` (PTR/SRV/TXT/A records into peers), `peers()` and `expire(now:)`. Decoding
/// throws `DiscoveryError` or yields a message that re-encodes (uncompressed) without trapping.
enum DNSMessageTarget {
    static let serviceType = "_peat._tcp.local."

    static func run(_ bytes: [UInt8]) {
        let message: DNSMessage
        do {
            message = try DNSMessage.decode(bytes)
        } catch {
            fuzzInvariant(error.code == .malformedResponse, "DNSMessage threw \(error.code)")
            return
        }
        _ = try? DNSMessage.decode(message.encoded())
        var cache = MDNSCache()
        let now = ContinuousClock.now
        _ = cache.absorb(message, serviceType: serviceType, ownInstance: "peat-mesh-0." + serviceType, now: now)
        _ = cache.peers()
        _ = cache.expire(now: now + .seconds(3600))
    }

    static func seeds() -> [(name: String, bytes: [UInt8])] {
        let instance = "peat-mesh-1." + serviceType
        let host = "peat-mesh-1.local."
        let announcement = DNSMessage(
            isResponse: true,
            records: [
                .init(name: serviceType, data: .ptr(instance), ttl: 120),
                .init(name: instance, data: .srv(priority: 0, weight: 0, port: 11204, target: host), ttl: 120, cacheFlush: true),
                .init(name: instance, data: .txt([Array("node_id=peat-mesh-1".utf8), Array("device_id=00ff".utf8)]), ttl: 120, cacheFlush: true),
                .init(name: host, data: .a([10, 0, 0, 7]), ttl: 120, cacheFlush: true),
                .init(name: host, data: .aaaa(Array(repeating: 0, count: 15) + [1]), ttl: 120),
                .init(name: host, data: .other(type: 47, bytes: [0, 1, 2]), ttl: 120),
            ])
        var goodbye = announcement
        for i in goodbye.records.indices { goodbye.records[i].ttl = 0 }
        let query = DNSMessage(isResponse: false, questions: [.init(name: serviceType, type: DNSMessage.typePTR, unicastResponse: true)])
        // A response with compressed names: the SRV target points back at "local." in the PTR's name.
        let compressed: [UInt8] =
            [0, 0, 0x84, 0, 0, 0, 0, 2, 0, 0, 0, 0]
            + [5] + Array("_peat".utf8) + [4] + Array("_tcp".utf8) + [5] + Array("local".utf8) + [0]  // offset 12
            + [0, 12, 0, 1, 0, 0, 0, 120, 0, 4, 1, 0x61, 0xC0, 12]  // PTR -> a._peat._tcp.local.
            + [0xC0, 12, 0, 33, 0x80, 1, 0, 0, 0, 120, 0, 10, 0, 0, 0, 0, 0x2B, 0xCC, 1, 0x62, 0xC0, 23]
        return [
            ("announcement", announcement.encoded()),
            ("goodbye", goodbye.encoded()),
            ("query", query.encoded()),
            ("compressed", compressed),
            ("pointer-loop", [0, 0, 0x84, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1]),
            ("header-only", [0, 0, 0x84, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        ]
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    DNSMessageTarget.run(FuzzMain.bytes(data, size))
    return 0
}

FuzzMain.run(seeds: DNSMessageTarget.seeds)
