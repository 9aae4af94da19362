"""Synthetic Chinese shared documents (CDA R2, WS/T 500 / WS/T 483 header profile) and FHIR R4
resources, built from the same facts the validators check. Deterministic: no clock, no randomness
of their own — every value comes from the caller."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from xml.sax.saxutils import escape

from hie.catalog import Table
from hie.normalize.identity import check_character
from hie.validators.cda_rules.content import ContentRules

SECTION_NAMES = {
    "10154-3": "主诉",
    "10164-2": "现病史",
    "11348-0": "既往史",
    "48765-2": "过敏史",
    "29545-1": "体格检查",
    "29548-5": "诊断记录",
    "11450-4": "主要健康问题",
    "46241-6": "入院诊断",
    "11535-2": "出院诊断",
    "47519-4": "手术操作",
    "18776-5": "治疗计划",
    "46209-3": "医嘱",
    "8648-8": "住院过程",
    "8716-3": "生命体征",
    "30954-2": "实验室/辅助检查",
    "10160-0": "用药",
    "48768-6": "费用",
}
DIAGNOSIS_ELEMENT = "DE05.01.024.00"
ICD10_SYSTEM = "2.16.156.10011.2.3.3.11"


@dataclass(frozen=True)
class Person:
    resident_id: str  # as written in documents (may carry a wrong check character on purpose)
    health_record_number: str
    name: str
    gender: str  # GB/T 2261.1: 1 男, 2 女
    birth: date


def resident_id(area: str, birth: date, serial: int, gender: str) -> str:
    """A valid GB 11643 number: area (6 digits), birth date, a 3-digit serial whose last digit is
    odd for men and even for women, and the check character."""
    sequence = serial % 500 * 2 + (1 if gender == "1" else 0)
    first17 = f"{area}{birth:%Y%m%d}{sequence:03d}"
    return first17 + check_character(first17)


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y%m%d%H%M%S%z")


def cda_document(
    table: Table,
    *,
    document_id: str,
    institution: str,
    institution_name: str,
    person: Person,
    effective: datetime,
    diagnosis: tuple[str, str] | None,
    rules: ContentRules,
    encounter_code: str | None = None,
    replaces: str | None = None,
    omit_section: str | None = None,
    gender_code: str | None = None,
) -> bytes:
    """A document of ``table`` that satisfies the header profile and the table's content rules.

    ``omit_section`` and ``gender_code`` break it on purpose (a missing required section, a code
    outside the gender value set).
    """
    sections = []
    required = [r for r in rules.of(table.code) if r.requirement == "section"]
    codes = [r.code for r in required] or ["11450-4"]
    entry_in = {r.section for r in rules.of(table.code) if r.requirement == "entry"}
    for code in codes:
        if code == omit_section:
            continue
        name = SECTION_NAMES.get(code, "记录")
        entry = ""
        if diagnosis is not None and (
            code in entry_in or code in ("29548-5", "11535-2", "11450-4")
        ):
            icd, label = diagnosis
            entry = f"""
          <entry>
            <observation classCode="OBS" moodCode="EVN">
              <code code="{DIAGNOSIS_ELEMENT}" codeSystem="2.16.156.10011.2.2.1" displayName="疾病诊断编码"/>
              <value xsi:type="CD" code="{icd}" displayName="{escape(label)}" codeSystem="{ICD10_SYSTEM}" codeSystemName="ICD-10"/>
            </observation>
          </entry>"""
        text = escape(diagnosis[1]) if diagnosis else "无特殊"
        sections.append(
            f"""
      <component>
        <section>
          <code code="{code}" codeSystem="2.16.840.1.113883.6.1" codeSystemName="LOINC" displayName="{name}"/>
          <title>{name}</title>
          <text>{text}</text>{entry}
        </section>
      </component>"""
        )
    related = (
        f"""
  <relatedDocument typeCode="RPLC">
    <parentDocument>
      <id root="2.16.156.10011.1.1" extension="{escape(replaces)}"/>
    </parentDocument>
  </relatedDocument>"""
        if replaces
        else ""
    )
    encounter = (
        f"""
  <componentOf>
    <encompassingEncounter>
      <code code="{encounter_code}"/>
      <effectiveTime>
        <low value="{_ts(effective)}"/>
      </effectiveTime>
    </encompassingEncounter>
  </componentOf>"""
        if encounter_code
        else ""
    )
    name = escape(table.name_zh)
    when = _ts(effective)
    gender = gender_code or person.gender
    document = f"""<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <realmCode code="CN"/>
  <typeId root="2.16.840.1.113883.1.3" extension="POCD_MT000040"/>
  <templateId root="{table.cda_template_id}"/>
  <id root="2.16.156.10011.1.1" extension="{escape(document_id)}"/>
  <code code="{table.cda_code}" codeSystem="2.16.156.10011.2.4" codeSystemName="卫生信息共享文档规范编码体系" displayName="{name}"/>
  <title>{name}</title>
  <effectiveTime value="{when}"/>
  <confidentialityCode code="N" codeSystem="2.16.840.1.113883.5.25" displayName="正常访问保密级别"/>
  <languageCode code="zh-CN"/>
  <recordTarget typeCode="RCT" contextControlCode="OP">
    <patientRole classCode="PAT">
      <id root="2.16.156.10011.1.2" extension="{person.health_record_number}"/>
      <patient classCode="PSN" determinerCode="INSTANCE">
        <id root="2.16.156.10011.1.3" extension="{person.resident_id}"/>
        <name>{escape(person.name)}</name>
        <administrativeGenderCode code="{gender}" codeSystem="2.16.156.10011.2.3.3.4" displayName="{"男" if gender == "1" else "女"}"/>
        <birthTime value="{person.birth:%Y%m%d}"/>
      </patient>
    </patientRole>
  </recordTarget>
  <author typeCode="AUT" contextControlCode="OP">
    <time value="{when}"/>
    <assignedAuthor classCode="ASSIGNED">
      <id root="2.16.156.10011.1.7" extension="D{institution[-4:]}"/>
      <assignedPerson>
        <name>李医生</name>
      </assignedPerson>
    </assignedAuthor>
  </author>
  <custodian typeCode="CST">
    <assignedCustodian classCode="ASSIGNED">
      <representedCustodianOrganization classCode="ORG" determinerCode="INSTANCE">
        <id root="2.16.156.10011.1.5" extension="{institution}"/>
        <name>{escape(institution_name)}</name>
      </representedCustodianOrganization>
    </assignedCustodian>
  </custodian>
  <legalAuthenticator>
    <time value="{when}"/>
    <signatureCode code="S"/>
    <assignedEntity>
      <id root="2.16.156.10011.1.4" extension="D{institution[-3:]}1"/>
      <assignedPerson>
        <name>王主任</name>
      </assignedPerson>
    </assignedEntity>
  </legalAuthenticator>{related}{encounter}
  <component>
    <structuredBody>{"".join(sections)}
    </structuredBody>
  </component>
</ClinicalDocument>
"""
    return document.encode("utf-8")


def fhir_patient(resource_id: str, person: Person) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": resource_id,
        "identifier": [
            {"system": "urn:oid:2.16.156.10011.1.3", "value": person.resident_id},
            {"system": "urn:oid:2.16.156.10011.1.2", "value": person.health_record_number},
        ],
        "name": [{"text": person.name}],
        "gender": "male" if person.gender == "1" else "female",
        "birthDate": person.birth.isoformat(),
    }


def fhir_encounter(
    resource_id: str, patient_id: str, klass: str, status: str, start: datetime
) -> dict[str, Any]:
    displays = {"AMB": "ambulatory", "EMER": "emergency", "IMP": "inpatient encounter"}
    encounter: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": resource_id,
        "status": status,
        "class": {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": klass,
            "display": displays[klass],
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "period": {"start": start.isoformat()},
    }
    return encounter


def fhir_condition(
    resource_id: str, patient_id: str, icd: str, label: str, recorded: datetime
) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": resource_id,
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "code": {
            "coding": [{"system": f"urn:oid:{ICD10_SYSTEM}", "code": icd, "display": label}],
            "text": label,
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "recordedDate": recorded.isoformat(),
    }
