"""The subset of Shopify's Admin GraphQL schema the stand-in serves, and its query-cost rule.

Two schemas are built from one SDL: API versions before 2026-04 still accept the old
``compareQuantity`` / ``ignoreCompareQuantity`` pair beside ``changeFromQuantity`` (added in
2026-01); from 2026-04 the old pair is removed, so a client that still sends it fails GraphQL
validation exactly as it would on Shopify (contracts §1.1 [S-cas]).

Cost (Shopify's documented default rule, [S-rl]): scalar and enum fields 0, object fields 1,
a mutation field 10.
"""

from __future__ import annotations

from functools import cache

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLSchema,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    build_schema,
    get_named_type,
    is_abstract_type,
    is_object_type,
    visit,
)

MUTATION_COST = 10
OBJECT_COST = 1

USER_ERROR_CODES = (
    "CHANGE_FROM_QUANTITY_STALE",
    "COMPARE_QUANTITY_REQUIRED",
    "COMPARE_QUANTITY_STALE",
    "IDEMPOTENCY_CONCURRENT_REQUEST",
    "IDEMPOTENCY_KEY_PARAMETER_MISMATCH",
    "INVALID_INVENTORY_ITEM",
    "INVALID_LOCATION",
    "INVALID_NAME",
    "INVALID_QUANTITY_NEGATIVE",
    "INVALID_QUANTITY_TOO_HIGH",
    "INVALID_QUANTITY_TOO_LOW",
    "INVALID_REASON",
    "INVALID_REFERENCE_DOCUMENT",
    "ITEM_NOT_STOCKED_AT_LOCATION",
    "NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR",
    "NON_MUTABLE_INVENTORY_ITEM",
)
"""``InventorySetQuantitiesUserErrorCode`` values as listed for API 2026-01."""

_SDL = """
directive @idempotent(key: String!) on FIELD

type Query {
  inventoryItem(id: ID!): InventoryItem
  location(id: ID!): Location
}

type Mutation {
  inventorySetQuantities(input: InventorySetQuantitiesInput!): InventorySetQuantitiesPayload
}

type Location {
  id: ID!
  name: String!
}

type InventoryItem {
  id: ID!
  sku: String
  tracked: Boolean!
  inventoryLevel(locationId: ID!): InventoryLevel
}

type InventoryLevel {
  id: ID!
  item: InventoryItem!
  location: Location!
  quantities(names: [String!]!): [InventoryQuantity!]!
}

type InventoryQuantity {
  id: ID!
  name: String!
  quantity: Int!
  updatedAt: String
}

input InventorySetQuantitiesInput {
  name: String!
  reason: String!
  referenceDocumentUri: String
  quantities: [InventoryQuantityInput!]!
  %(old_input)s
}

input InventoryQuantityInput {
  inventoryItemId: ID!
  locationId: ID!
  quantity: Int!
  changeFromQuantity: Int
  %(old_quantity)s
}

type InventorySetQuantitiesPayload {
  inventoryAdjustmentGroup: InventoryAdjustmentGroup
  userErrors: [InventorySetQuantitiesUserError!]!
}

type InventoryAdjustmentGroup {
  id: ID!
  createdAt: String!
  reason: String!
  referenceDocumentUri: String
  changes(quantityNames: [String!]): [InventoryChange!]!
}

type InventoryChange {
  name: String!
  delta: Int!
  quantityAfterChange: Int
  item: InventoryItem
  location: Location
}

type InventorySetQuantitiesUserError {
  code: InventorySetQuantitiesUserErrorCode
  field: [String!]
  message: String!
}

enum InventorySetQuantitiesUserErrorCode {
  %(codes)s
}
"""


@cache
def schema_for(cas_only: bool) -> GraphQLSchema:
    """The schema of API versions from 2026-04 (``cas_only``) or of 2026-01."""
    return build_schema(
        _SDL
        % {
            "old_input": "" if cas_only else "ignoreCompareQuantity: Boolean",
            "old_quantity": "" if cas_only else "compareQuantity: Int",
            "codes": "\n  ".join(USER_ERROR_CODES),
        }
    )


def query_cost(schema: GraphQLSchema, document: DocumentNode) -> int:
    """The requested cost of ``document`` by Shopify's default field costs."""
    info = TypeInfo(schema)
    total = 0

    class Cost(Visitor):
        def enter_field(self, node: FieldNode, *_: object) -> None:
            nonlocal total
            parent = info.get_parent_type()
            returned = info.get_type()
            if parent is not None and parent is schema.mutation_type:
                total += MUTATION_COST
            elif returned is not None:
                named = get_named_type(returned)
                if is_object_type(named) or is_abstract_type(named):
                    total += OBJECT_COST

    visit(document, TypeInfoVisitor(info, Cost()))
    return total
