"""The site shell's /v1/ API: the caller, API keys and organizations.

Each class is one operation: parse, call a service or selector, serialize.
"""
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import UserRateThrottle
from rest_framework.views import APIView

from marketplace import selectors, services
from marketplace.errors import InputError, NotFoundError, PermissionDeniedError
from marketplace.models import ApiKey, Membership, Organization


class KeyOutput(serializers.Serializer):
    id = serializers.CharField(source="prefix")
    name = serializers.CharField()
    key_masked = serializers.CharField(source="masked")
    last4 = serializers.CharField()
    owner = serializers.CharField(source="owner_name")
    owner_type = serializers.SerializerMethodField()
    scopes = serializers.SerializerMethodField()
    active = serializers.BooleanField(source="is_active")
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    revoked_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField()
    monthly_spend_cap_microcredits = serializers.IntegerField(source="monthly_spend_cap")

    def get_owner_type(self, key: ApiKey) -> str:
        return "organization" if key.organization_id else "user"

    def get_scopes(self, key: ApiKey) -> dict:
        return {"algorithms": key.algo_patterns, "data": key.data_access, "manage": key.can_manage}


def _require_manage(request) -> ApiKey:
    key = request.auth
    if not key.can_manage:
        raise PermissionDeniedError("This key lacks the manage scope.")
    return key


def _not_for_a_call(request) -> None:
    """An algorithm's key for its own calls (``ApiKey.acting_user``) acts for code its
    caller did not write: it does not read the caller's account or organizations."""
    if getattr(request.user, "acting_for_a_call", False):
        raise PermissionDeniedError("An algorithm's key for its own calls cannot read its "
                                    "caller's account.")


class MeApi(APIView):
    """Who the key belongs to and what it may do."""

    def get(self, request):
        _not_for_a_call(request)
        key = request.auth
        orgs = selectors.organizations_for_user(user=request.user)
        return Response({
            "username": request.user.username,
            "acting_as": key.owner_name,
            "key": KeyOutput(key).data,
            "organizations": [org.name for org in orgs],
        })


class KeyListApi(APIView):
    def get(self, request):
        _require_manage(request)
        keys = selectors.api_keys_manageable_by_key(key=request.auth)
        return Response({"results": KeyOutput(keys, many=True).data})


class KeyCreateThrottle(UserRateThrottle):
    scope = "key_create"


class KeyCreateApi(APIView):
    throttle_classes = [KeyCreateThrottle]

    class ScopesInput(serializers.Serializer):
        algorithms = serializers.ListField(child=serializers.CharField(), required=False)
        data = serializers.ChoiceField(choices=ApiKey.DataAccess.values, required=False)
        manage = serializers.BooleanField(required=False)

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100)
        scopes = serializers.DictField(required=False)
        expires_at = serializers.DateTimeField(required=False, allow_null=True)
        monthly_spend_cap_microcredits = serializers.IntegerField(
            required=False, allow_null=True, min_value=0, max_value=10 ** 18)

    def post(self, request):
        parent = _require_manage(request)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        owner = request.data.get("owner") if isinstance(request.data, dict) else None
        if owner is not None and str(owner).lower() != parent.owner_name.lower():
            # It was ignored: the key made was the asking key's owner's, with no word.
            raise InputError(f"A key made over the API belongs to this key's owner "
                             f"({parent.owner_name}); make {owner}'s keys on the keys page.")
        scopes_in = self.ScopesInput(data=data.validated_data.get("scopes") or {})
        scopes_in.is_valid(raise_exception=True)
        scopes = scopes_in.validated_data
        issued = services.api_key_create_from_key(
            parent=parent,
            name=data.validated_data["name"],
            scopes=services.KeyScopes(
                algo_patterns=scopes.get("algorithms", parent.algo_patterns),
                data_access=scopes.get("data", parent.data_access),
                can_manage=scopes.get("manage", False),
            ),
            expires_at=data.validated_data.get("expires_at"),
            monthly_spend_cap=data.validated_data.get("monthly_spend_cap_microcredits"),
        )
        return Response({**KeyOutput(issued.key).data, "key": issued.raw}, status=201)


class KeyDetailApi(APIView):
    def get(self, request, prefix: str):
        _require_manage(request)
        return Response(KeyOutput(_manageable_key(request, prefix)).data)


class KeyUpdateApi(APIView):
    """Change what can change on a key: its monthly spending cap."""

    class InputSerializer(serializers.Serializer):
        monthly_spend_cap_microcredits = serializers.IntegerField(allow_null=True, min_value=0,
                                                                  max_value=10 ** 18)

    def patch(self, request, prefix: str):
        _require_manage(request)
        key = _manageable_key(request, prefix)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        key = services.api_key_set_spend_cap(
            key=key, cap=data.validated_data["monthly_spend_cap_microcredits"],
            actor=request.user, by_key=request.auth)
        return Response(KeyOutput(key).data)


class KeyRevokeApi(APIView):
    def delete(self, request, prefix: str):
        _require_manage(request)
        key = _manageable_key(request, prefix)
        return Response(KeyOutput(services.api_key_revoke(key=key, actor=request.user)).data)


def _manageable_key(request, prefix: str) -> ApiKey:
    key = selectors.api_keys_manageable_by_key(key=request.auth).filter(prefix=prefix).first()
    if key is None:
        raise NotFoundError("No such API key.")
    return key


# --- Organizations (the official client's create_org / get_org / edit_org / invite_to_org) ---

class OrganizationOutput(serializers.Serializer):
    id = serializers.UUIDField(source="uuid")
    org_name = serializers.CharField(source="name")
    org_label = serializers.CharField(source="label")
    org_contact_name = serializers.CharField(source="contact_name")
    org_email = serializers.CharField(source="email")
    org_url = serializers.CharField(source="url")
    type_id = serializers.SerializerMethodField()
    type = serializers.CharField(source="org_type")
    created_at = serializers.DateTimeField()
    resource_type = serializers.SerializerMethodField()

    def get_type_id(self, org: Organization) -> str:
        return Organization.TYPE_IDS[org.org_type]

    def get_resource_type(self, org: Organization) -> str:
        return "organization"


def _org_type_from(type_id: str | None) -> str:
    by_id = {v: k for k, v in Organization.TYPE_IDS.items()}
    if type_id in by_id:
        return by_id[type_id]
    if type_id in Organization.Type.values:
        return type_id
    raise InputError("invalid type_id")


def _personal_key(request) -> None:
    if request.auth.organization_id is not None:
        raise PermissionDeniedError("Use a personal key to manage organizations.")
    _require_manage(request)


class OrganizationTypesApi(APIView):
    """``GET /v1/organization/types``: public (a fixed list; the generated management client,
    algorithmia-api-client, asks for it without a key)."""

    permission_classes = [AllowAny]

    def get(self, request):
        return Response([{"id": Organization.TYPE_IDS[t], "name": t.value}
                         for t in Organization.Type])


class OrganizationInput(serializers.Serializer):
    org_label = serializers.CharField(max_length=100, required=False, allow_blank=True)
    org_contact_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    org_email = serializers.EmailField(required=False, allow_blank=True)
    org_url = serializers.URLField(required=False, allow_blank=True)
    type_id = serializers.CharField(required=False, allow_blank=True)

    def to_service_fields(self) -> dict:
        names = {"org_label": "label", "org_contact_name": "contact_name", "org_email": "email",
                 "org_url": "url"}
        fields = {names[k]: v for k, v in self.validated_data.items() if k in names}
        if "type_id" in self.validated_data:
            fields["org_type"] = _org_type_from(self.validated_data["type_id"])
        return fields


class OrganizationCreateApi(APIView):
    class InputSerializer(OrganizationInput):
        org_name = serializers.CharField(max_length=40)
        type_id = serializers.CharField(allow_blank=True)

    def post(self, request):
        _personal_key(request)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        org = services.organization_create(
            actor=request.user, name=data.validated_data["org_name"], **data.to_service_fields()
        )
        return Response(OrganizationOutput(org).data, status=201)


class OrganizationDetailApi(APIView):
    def get(self, request, name: str):
        _not_for_a_call(request)
        org = selectors.organization_get_for_member(name=name, user=request.user)
        return Response(OrganizationOutput(org).data)


class OrganizationUpdateApi(APIView):
    def put(self, request, name: str):
        _personal_key(request)
        org = selectors.organization_get_for_member(name=name, user=request.user)
        data = OrganizationInput(data=request.data)
        data.is_valid(raise_exception=True)
        org = services.organization_update(organization=org, actor=request.user,
                                           **data.to_service_fields())
        return Response(OrganizationOutput(org).data)


class MembershipOutput(serializers.Serializer):
    username = serializers.CharField(source="user.username")
    role = serializers.CharField()
    joined_at = serializers.DateTimeField(source="created_at")


class MemberListApi(APIView):
    def get(self, request, name: str):
        _not_for_a_call(request)
        org = selectors.organization_get_for_member(name=name, user=request.user)
        members = selectors.memberships_of(organization=org)
        return Response({"results": MembershipOutput(members, many=True).data})


class MemberAddApi(APIView):
    """PUT adds a member (role from the body, ``member`` by default) or changes their role."""

    class InputSerializer(serializers.Serializer):
        role = serializers.ChoiceField(choices=Membership.Role.values, required=False)

    def put(self, request, name: str, username: str):
        _personal_key(request)
        org = selectors.organization_get_for_member(name=name, user=request.user)
        user = selectors.user_get_by_username(username=username)
        body = request.data if isinstance(request.data, dict) else {}
        data = self.InputSerializer(data=body)
        data.is_valid(raise_exception=True)
        role = data.validated_data.get("role", Membership.Role.MEMBER)
        existing = selectors.membership_get(organization=org, user=user)
        if existing is None:
            membership = services.membership_add(organization=org, actor=request.user,
                                                 user=user, role=role)
            return Response(MembershipOutput(membership).data, status=201)
        if "role" not in data.validated_data:
            return Response(MembershipOutput(existing).data)
        membership = services.membership_set_role(organization=org, actor=request.user,
                                                  user=user, role=role)
        return Response(MembershipOutput(membership).data)


class MemberRemoveApi(APIView):
    def delete(self, request, name: str, username: str):
        _personal_key(request)
        org = selectors.organization_get_for_member(name=name, user=request.user)
        user = selectors.user_get_by_username(username=username)
        services.membership_remove(organization=org, actor=request.user, user=user)
        return Response({"result": {"removed": user.username}})
