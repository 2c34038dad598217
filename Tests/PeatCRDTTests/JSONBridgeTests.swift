import Testing

@testable import PeatCRDT

struct JSONBridgeTests {
    let sample: JSON = .object([
        "id": .string("node-1"), "alt": .double(12.5), "ok": .bool(true), "n": .null,
        "pos": .object(["lat": .double(1), "lon": .double(2)]),
        "tags": .array([.string("a"), .int(2), .object(["x": .int(1)])]),
    ])

    @Test func jsonRoundTrips() throws {
        let d = Document(actor: actor(1))
        try d.replace(with: sample)
        d.commit()
        #expect(d.toJSON() == sample)
        let loaded = try Document(loading: d.save(), actor: actor(2))
        #expect(loaded.toJSON() == sample)
        #expect(sample.canonicalString == #"{"alt":12.5,"id":"node-1","n":null,"ok":true,"pos":{"lat":1.0,"lon":2.0},"tags":["a",2,{"x":1}]}"#)
    }

    @Test func replacingWithTheSameJSONEmitsNothingAndOneChangeEmitsOneOp() throws {
        let d = Document(actor: actor(1))
        try d.replace(with: sample)
        d.commit()
        try d.replace(with: sample)
        #expect(!d.hasPendingChanges)
        guard case .object(var members) = sample, case .object(var pos) = members["pos"]! else { return }
        pos["lat"] = .double(3)
        members["pos"] = .object(pos)
        let opsBefore = d.maxOp
        try d.replace(with: .object(members))
        #expect(d.maxOp == opsBefore + 1)
        #expect(d.toJSON() == .object(members))
        // A list edit in the middle keeps prefix and suffix.
        members["tags"] = .array([.string("a"), .int(3), .object(["x": .int(1)])])
        let before = d.maxOp
        try d.replace(with: .object(members))
        #expect(d.maxOp == before + 1)
        #expect(d.toJSON() == .object(members))
    }

    @Test func mergePatchFollowsRFC7396() throws {
        let d = Document(actor: actor(1))
        try d.replace(with: sample)
        let patch: JSON = .object(["alt": .null, "pos": .object(["lat": .double(5), "extra": .null]), "new": .string("v")])
        try d.applyMergePatch(patch)
        #expect(d.toJSON() == sample.mergePatched(with: patch))
        #expect(throws: PeatCRDTError.self) { try d.applyMergePatch(.array([])) }
        #expect(throws: PeatCRDTError.self) { try d.replace(with: .string("x")) }
    }

    @Test func concurrentReplacesOfDifferentFieldsBothSurvive() throws {
        let a = Document(actor: actor(1))
        try a.replace(with: sample)
        a.commit()
        let b = try Document(loading: a.save(), actor: actor(2))
        try a.applyMergePatch(.object(["id": .string("renamed")]))
        a.commit()
        try b.applyMergePatch(.object(["ok": .bool(false)]))
        b.commit()
        try syncPair(a, b)
        #expect(a.toJSON() == sample.mergePatched(with: .object(["id": .string("renamed"), "ok": .bool(false)])))
        #expect(b.toJSON() == a.toJSON())
    }
}
