import HTTP1
import Iamport

/// Whether a request presents an account's client token, in a form the
/// account's API's SDKs send it. V1 SDKs send the token they got from the
/// local getToken as `Authorization: Bearer <t>`, `Authorization: <t>` or
/// `X-ImpTokenHeader: <t>`; V2 SDKs, given the client token as their API
/// secret, send `Authorization: PortOne <t>`. Every candidate field is
/// compared in constant time, so timing does not tell which form matched.
enum ClientCredential {
    static func presents(_ token: Secret, in head: RequestHead, api: AccountAPI) -> Bool {
        var presented = false
        for field in head.fields {
            switch (field.kind, api) {
            case (.authorization, .v1):
                var value = head.bytes[field.value]
                if value.count > 7, value.prefix(7).equalsLowercased("bearer ") {
                    value = value.dropFirst(7)
                    while let first = value.first, ASCII.isOWS(first) { value = value.dropFirst() }
                }
                if token.constantTimeEquals(value) { presented = true }
            case (.impTokenHeader, .v1):
                if token.constantTimeEquals(head.bytes[field.value]) { presented = true }
            case (.authorization, .v2):
                var value = head.bytes[field.value]
                guard value.count > 8, value.prefix(8).equalsLowercased("portone ") else { continue }
                value = value.dropFirst(8)
                while let first = value.first, ASCII.isOWS(first) { value = value.dropFirst() }
                if token.constantTimeEquals(value) { presented = true }
            default:
                break
            }
        }
        return presented
    }
}
