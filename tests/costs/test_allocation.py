from costs.allocation import Rule, allocate, normalise_key


def rule(id, bu, key, values, priority=100):
    return Rule.build(id=id, business_unit_id=bu, key=key, values=values, priority=priority)


def test_normalise_key_sees_through_case_spaces_and_aws_prefixes():
    assert normalise_key(" Team") == "team"
    assert normalise_key("user:Team") == "team"
    assert normalise_key("resourceTags/user:team") == "team"
    assert normalise_key("label:team") == "team"


def test_allocate_matches_keys_and_values_case_insensitively():
    rules = [rule(1, 10, "team", ["Research"])]
    assert allocate({"TEAM": " research "}, rules).business_unit_id == 10
    assert allocate({"user:team": "RESEARCH"}, rules).business_unit_id == 10


def test_allocate_takes_the_lowest_priority_first():
    rules = [
        rule(1, 10, "team", ["research"], priority=50),
        rule(2, 20, "cost-center", ["4410"], priority=10),
    ]
    assert allocate({"team": "research", "cost-center": "4410"}, rules).business_unit_id == 20


def test_allocate_breaks_priority_ties_by_rule_id():
    rules = [rule(7, 70, "team", ["x"], priority=5), rule(3, 30, "env", ["prod"], priority=5)]
    assert allocate({"team": "x", "env": "prod"}, rules).business_unit_id == 30


def test_allocate_returns_none_when_no_rule_claims_the_tags():
    rules = [rule(1, 10, "team", ["research"])]
    assert allocate({"team": "marketing"}, rules) is None
    assert allocate({}, rules) is None


def test_allocate_rule_without_values_matches_any_value_of_its_key():
    rules = [rule(1, 10, "project", [])]
    assert allocate({"Project": "anything"}, rules).business_unit_id == 10
    assert allocate({"other": "x"}, rules) is None


def test_allocate_prefers_the_non_empty_value_when_keys_collide_after_normalising():
    rules = [rule(1, 10, "org", ["trey"])]
    assert allocate({"org": "", " org": "trey"}, rules).business_unit_id == 10
