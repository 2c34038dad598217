public import PropertyBased
public import Testing

/// `propertyCheck` for bodies that throw.
///
/// swift-property-based 2.0 runs the body under `try?` (Swift ≥ 6.2), so an error thrown by the body
/// is dropped and the case passes. This records the error as an issue inside the body, where the
/// library counts it, reports the failing input and shrinks it like any failed expectation.
public func throwingPropertyCheck<InputValue, ResultValue>(
    count: Int = 100,
    input: Generator<ResultValue, some Sequence<InputValue>>,
    perform body: (ResultValue) async throws -> Void,
    isolation: isolated (any Actor)? = #isolation,
    sourceLocation: SourceLocation = #_sourceLocation
) async {
    await propertyCheck(
        count: count, input: input,
        perform: { value in
            do { try await body(value) } catch { Issue.record(error, sourceLocation: sourceLocation) }
        }, isolation: isolation, sourceLocation: sourceLocation)
}

/// `throwingPropertyCheck` over two generators.
public func throwingPropertyCheck<InA, InB, OutA, OutB>(
    count: Int = 100,
    input g0: Generator<OutA, some Sequence<InA>>,
    _ g1: Generator<OutB, some Sequence<InB>>,
    perform body: (OutA, OutB) async throws -> Void,
    isolation: isolated (any Actor)? = #isolation,
    sourceLocation: SourceLocation = #_sourceLocation
) async {
    await throwingPropertyCheck(
        count: count, input: zip(g0, g1), perform: { try await body($0.0, $0.1) },
        isolation: isolation, sourceLocation: sourceLocation)
}

/// `throwingPropertyCheck` over three generators.
public func throwingPropertyCheck<InA, InB, InC, OutA, OutB, OutC>(
    count: Int = 100,
    input g0: Generator<OutA, some Sequence<InA>>,
    _ g1: Generator<OutB, some Sequence<InB>>,
    _ g2: Generator<OutC, some Sequence<InC>>,
    perform body: (OutA, OutB, OutC) async throws -> Void,
    isolation: isolated (any Actor)? = #isolation,
    sourceLocation: SourceLocation = #_sourceLocation
) async {
    await throwingPropertyCheck(
        count: count, input: zip(g0, g1, g2), perform: { try await body($0.0, $0.1, $0.2) },
        isolation: isolation, sourceLocation: sourceLocation)
}

/// `throwingPropertyCheck` over four generators.
public func throwingPropertyCheck<InA, InB, InC, InD, OutA, OutB, OutC, OutD>(
    count: Int = 100,
    input g0: Generator<OutA, some Sequence<InA>>,
    _ g1: Generator<OutB, some Sequence<InB>>,
    _ g2: Generator<OutC, some Sequence<InC>>,
    _ g3: Generator<OutD, some Sequence<InD>>,
    perform body: (OutA, OutB, OutC, OutD) async throws -> Void,
    isolation: isolated (any Actor)? = #isolation,
    sourceLocation: SourceLocation = #_sourceLocation
) async {
    await throwingPropertyCheck(
        count: count, input: zip(g0, g1, g2, g3), perform: { try await body($0.0, $0.1, $0.2, $0.3) },
        isolation: isolation, sourceLocation: sourceLocation)
}
