import PeatIdentity
import PeatTransport

extension SyncTransportConformance {
    static func exchangesFrames(_ subject: any SyncTransportConformanceSubject) async throws {
        try await withPair(subject) { a, b, address in
            async let accepted = nextInbound(b)
            let outbound = try await a.connect(to: address, expectedPeer: b.localIdentity.deviceID)
            let inbound = try await accepted
            try expect(outbound.peer == b.localIdentity && inbound.peer == a.localIdentity, "both sides see the other's identity")
            async let echoed: [[UInt8]] = outbound.withFrames { frames, writer in
                for index in 0..<50 { try await writer.send([UInt8(index), 1, 2, 3]) }
                var received: [[UInt8]] = []
                for try await frame in frames {
                    received.append(frame)
                    if received.count == 50 { break }
                }
                return received
            }
            try await inbound.withFrames { frames, writer in
                var count = 0
                for try await frame in frames {
                    try await writer.send(frame.reversed())
                    count += 1
                    if count == 50 { break }
                }
            }
            let result = try await echoed
            try expect(result.count == 50 && result.first == [3, 2, 1, 0] && result.last == [3, 2, 1, 49], "50 frames each way, in order")
        }
    }

    static func rejectsOtherFormation(_ subject: any SyncTransportConformanceSubject) async throws {
        try await withPair(subject, listenerSecret: Array("some other formation entirely".utf8)) { a, _, address in
            try await expectFailure("dialling a member of another formation", code: .notFormationMember) {
                _ = try await a.connect(to: address, expectedPeer: nil)
            }
        }
    }

    static func rejectsUnexpectedIdentity(_ subject: any SyncTransportConformanceSubject) async throws {
        try await withPair(subject) { a, _, address in
            try await expectFailure("dialling a peer that is not the expected device", code: .unexpectedIdentity) {
                _ = try await a.connect(to: address, expectedPeer: keypair("peat-mesh-9").deviceID)
            }
        }
    }

    static func closingEndsInbound(_ subject: any SyncTransportConformanceSubject) async throws {
        try await withPair(subject) { a, b, address in
            async let accepted = nextInbound(b)
            let outbound = try await a.connect(to: address, expectedPeer: nil)
            let inbound = try await accepted
            try await outbound.withFrames { _, writer in try await writer.send([42]) }  // returns: closes
            let received: [[UInt8]] = try await inbound.withFrames { frames, _ in
                var all: [[UInt8]] = []
                for try await frame in frames { all.append(frame) }
                return all
            }
            try expect(received == [[42]], "the peer reads what was sent, then the end")
        }
    }

    static func refusesSecondUseAndOversizedFrames(_ subject: any SyncTransportConformanceSubject) async throws {
        let maximum = subject.maximumPayloadSize
        try await withPair(subject) { a, _, address in
            let connection = try await a.connect(to: address, expectedPeer: nil)
            try await expectFailure("sending a frame over the maximum", code: .frameTooLarge) {
                try await connection.withFrames { _, writer in try await writer.send([UInt8](repeating: 1, count: maximum + 1)) }
            }
            try await expectFailure("using a connection's frames twice") {
                try await connection.withFrames { _, _ in }
            }
        }
    }

    static func refusesUnreachableAddress(_ subject: any SyncTransportConformanceSubject) async throws {
        let unreachable = subject.unreachableAddress
        try await withPair(subject) { a, _, _ in
            try await expectFailure("dialling where nothing listens") {
                _ = try await a.connect(to: unreachable, expectedPeer: nil)
            }
        }
    }
}
