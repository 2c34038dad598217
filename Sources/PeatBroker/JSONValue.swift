public import PeatCRDT

/// A JSON value as documents carry it: the document model's own `JSON` (PeatCRDT), so the broker,
/// the mesh and an embedding service share one type, one `Codable` form, one serializer
/// (`serialized()`) and one RFC 7396 merge (`mergePatched(with:)`) — no conversions in between.
public typealias JSONValue = JSON
