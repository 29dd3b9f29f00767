from rest_framework import serializers

from governance.models import BusinessUnit


class BusinessUnitSerializer(serializers.ModelSerializer):
    owner = serializers.StringRelatedField()

    class Meta:
        model = BusinessUnit
        fields = ["id", "code", "name", "cost_centre", "owner"]
